package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/peernet/peernet/config"
)

// docPath is the walkthrough that quotes this package.
const docPath = "../../docs/plugins.md"

// fence matches a fenced code block and captures its language and body.
var fence = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```$")

// docBlocks returns the bodies of docPath's code blocks in language lang.
func docBlocks(t testing.TB, lang string) []string {
	t.Helper()
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range fence.FindAllStringSubmatch(string(doc), -1) {
		if m[1] == lang {
			out = append(out, m[2])
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no %s code blocks", docPath, lang)
	}
	return out
}

// TestDocQuotesSources keeps docs/plugins.md and this package in step:
// main.go and greeter_test.go appear there in full, and every other Go
// block is an excerpt of one of them, so every Go snippet of the
// walkthrough compiles and its tests pass.
func TestDocQuotesSources(t *testing.T) {
	sources := map[string]string{}
	for _, name := range []string{"main.go", "greeter_test.go"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		sources[name] = string(b)
	}
	blocks := docBlocks(t, "go")
	for name, src := range sources {
		if !slices.Contains(blocks, src) {
			t.Errorf("%s does not quote %s in full, as it is now", docPath, name)
		}
	}
	for i, b := range blocks {
		found := false
		for _, src := range sources {
			found = found || strings.Contains(src, b)
		}
		if !found {
			t.Errorf("Go block %d of %s is not an excerpt of main.go or greeter_test.go:\n%s", i+1, docPath, b)
		}
	}
}

// TestDocConfig checks that every HCL block of the walkthrough is a valid
// configuration file whose plugin handles the greeter serves.
func TestDocConfig(t *testing.T) {
	served := newGreeter().config().Handlers
	for i, b := range docBlocks(t, "hcl") {
		dir := t.TempDir()
		// Plugin commands must exist and be executable when the file is read.
		if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "bin", "greeter"), []byte("\x7fELF"), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := config.Parse([]byte(b), filepath.Join(dir, "peernet.hcl"))
		if err != nil {
			t.Errorf("HCL block %d of %s: %v", i+1, docPath, err)
			continue
		}
		if len(f.Plugins) == 0 {
			t.Errorf("HCL block %d of %s configures no plugin", i+1, docPath)
		}
		for _, p := range f.Plugins {
			for _, h := range p.Handles {
				if served[h.Name] == nil {
					t.Errorf("HCL block %d of %s exposes %q, which the greeter does not serve", i+1, docPath, h.Name)
				}
			}
		}
	}
}
