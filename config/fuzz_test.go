package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics, that it returns either a File
// or a *DiagError whose every diagnostic has a position and a message, and
// that Locate agrees with it.
func FuzzParse(f *testing.F) {
	paths, err := filepath.Glob("testdata/*/*.hcl")
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed files in testdata (%v)", err)
	}
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Add(Starter("alpha", "", true))
	f.Add([]byte(`node { name = "a" data_dir = "d" }`))
	f.Add([]byte("plugin \"p\" {\n  config = { a = [1, { b = null }] }\n  handle \"h\" { allow = [\"x\"] }\n}\n"))

	// Relative commands resolve next to this fake file, inside testdata, so
	// the fuzzer can reach the stand-in binaries.
	filename := filepath.Join("testdata", "valid", "fuzz.hcl")
	f.Fuzz(func(t *testing.T, src []byte) {
		checkLocateAgrees(t, src, filename)
		file, err := Parse(src, filename)
		if err == nil {
			if file == nil {
				t.Fatal("Parse returned neither a File nor an error")
			}
			return
		}
		var de *DiagError
		if !errors.As(err, &de) || len(de.Diagnostics) == 0 {
			t.Fatalf("Parse error %T %v, want a non-empty *DiagError", err, err)
		}
		for _, d := range de.Diagnostics {
			if d.Subject == nil || d.Summary == "" {
				t.Fatalf("diagnostic without a position or summary: %+v", d)
			}
		}
		_ = de.Error()
	})
}
