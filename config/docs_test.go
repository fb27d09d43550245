package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const docPath = "../docs/configuration.md"

// docRow is one row of an attribute table in the documentation.
type docRow struct {
	line          int
	typ, def      string
	block         string // the block path of the table, "" for the top level
	name, meaning string
}

var (
	headingRE  = regexp.MustCompile("^#+ ")
	codeSpanRE = regexp.MustCompile("`([^`]*)`")
	parentRE   = regexp.MustCompile("\\(in `([^`]+)`\\)")
)

// readDocTables returns the rows of every Name/Type/Default/Meaning table in
// the documentation, keyed by the block path of the heading above it: the
// first word of the heading's first code span, prefixed by the parent named
// in "(in `plugin`)" if any. "Top-level blocks" gives "".
func readDocTables(t testing.TB) map[string][]docRow {
	t.Helper()
	src, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	tables := make(map[string][]docRow)
	block, inBlock := "", false
	for i, line := range strings.Split(string(src), "\n") {
		switch {
		case headingRE.MatchString(line):
			block, inBlock = "", false
			if strings.Contains(line, "Top-level blocks") {
				inBlock = true
			} else if m := codeSpanRE.FindStringSubmatch(line); m != nil {
				block, inBlock = strings.Fields(m[1])[0], true
				if p := parentRE.FindStringSubmatch(line); p != nil {
					block = p[1] + "." + block
				}
			}
		case strings.HasPrefix(line, "| Name "):
			if !inBlock {
				t.Errorf("%s:%d: attribute table under a heading that names no block", docPath, i+1)
			}
		case strings.HasPrefix(line, "| `"):
			cells := strings.Split(strings.Trim(line, "|"), " | ")
			if len(cells) != 4 {
				t.Errorf("%s:%d: table row has %d cells, want 4: %s", docPath, i+1, len(cells), line)
				continue
			}
			if !inBlock {
				t.Errorf("%s:%d: table row under a heading that names no block", docPath, i+1)
				continue
			}
			name := strings.TrimSpace(cells[0])
			tables[block] = append(tables[block], docRow{
				line:    i + 1,
				block:   block,
				name:    strings.Trim(name, "`"),
				typ:     strings.TrimSpace(cells[1]),
				def:     strings.TrimSpace(cells[2]),
				meaning: strings.TrimSpace(cells[3]),
			})
		}
	}
	return tables
}

// TestDocsMatchSchema checks that docs/configuration.md has a table row for
// every block and attribute of the schema, with its type and default, and no
// row the schema lacks.
func TestDocsMatchSchema(t *testing.T) {
	tables := readDocTables(t)
	type want struct{ typ, def string }
	var walk func(path string, b *blockSpec)
	seen := make(map[string]bool)
	walk = func(path string, b *blockSpec) {
		seen[path] = true
		expect := make(map[string]want)
		for _, a := range b.attrs {
			expect[a.name] = want{a.kind.docName(), a.docDefault()}
		}
		for _, c := range b.blocks {
			w := want{"block", "none"}
			if c.multi {
				w.typ = "repeated block"
			}
			if c.required {
				w.def = "required"
			}
			expect[c.typ] = w
		}
		rows := tables[path]
		if len(rows) == 0 {
			t.Errorf("%s: no table for block %q", docPath, path)
		}
		documented := make(map[string]bool)
		for _, r := range rows {
			w, ok := expect[r.name]
			switch {
			case !ok:
				t.Errorf("%s:%d: %q is not in the schema of block %q", docPath, r.line, r.name, path)
			case documented[r.name]:
				t.Errorf("%s:%d: %q is documented twice in block %q", docPath, r.line, r.name, path)
			case r.typ != w.typ || r.def != w.def:
				t.Errorf("%s:%d: %s.%s is documented as type %q default %q, want type %q default %q",
					docPath, r.line, path, r.name, r.typ, r.def, w.typ, w.def)
			case r.meaning == "":
				t.Errorf("%s:%d: %s.%s has no meaning", docPath, r.line, path, r.name)
			}
			documented[r.name] = true
		}
		for name := range expect {
			if !documented[name] {
				t.Errorf("%s: %q of block %q is not documented", docPath, name, path)
			}
		}
		for _, c := range b.blocks {
			child := c.typ
			if path != "" {
				child = path + "." + c.typ
			}
			walk(child, c)
		}
	}
	walk("", schema)
	for path := range tables {
		if !seen[path] {
			t.Errorf("%s: table for block %q, which the schema does not have", docPath, path)
		}
	}
}

// TestDocsExamples parses every hcl code block in the documentation. The
// examples cannot ship plugin binaries, so a missing binary is the only
// error tolerated; snippets without a node block may also lack one.
func TestDocsExamples(t *testing.T) {
	src, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	examples := regexp.MustCompile("(?s)```hcl\n(.*?)```").FindAllStringSubmatch(string(src), -1)
	if len(examples) == 0 {
		t.Fatalf("%s has no hcl examples", docPath)
	}
	for i, ex := range examples {
		_, err := Parse([]byte(ex[1]), filepath.Join(t.TempDir(), "example.hcl"))
		var de *DiagError
		if err != nil && !errors.As(err, &de) {
			t.Fatalf("example %d: %v", i+1, err)
		}
		if de == nil {
			continue
		}
		for _, d := range de.Diagnostics {
			if d.Summary != "Plugin binary not found" && d.Summary != "Missing node block" {
				t.Errorf("example %d: %s", i+1, diagLine(d))
			}
		}
	}
}
