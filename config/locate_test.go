package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLocate checks that Locate reads the node block's name and data_dir
// from files that Load refuses for reasons elsewhere, and refuses what
// leaves it without them.
func TestLocate(t *testing.T) {
	const node = "node {\n  name     = \"alpha\"\n  data_dir = \"./data\"\n  listen   = \"127.0.0.1:0\"\n}\n"
	tests := []struct {
		name string
		src  string
		// loadErr is in Load's error, or "" if Load accepts the file.
		loadErr string
		// locateErr is in Locate's error, or "" if Locate accepts it.
		locateErr string
	}{
		{name: "valid", src: node},
		{
			name:      "plugin binary missing",
			src:       node + "plugin \"echo\" {\n  command = \"./bin/absent\"\n  sha256  = \"" + strings.Repeat("ab", 32) + "\"\n}\n",
			loadErr:   "Plugin binary not found",
			locateErr: "",
		},
		{
			name:    "peer and telemetry invalid",
			src:     node + "peer \"beta\" {\n  id = \"pn1nope\"\n}\ntelemetry {\n  metrics_listen = 9090\n}\nbogus = 1\n",
			loadErr: "Invalid peer ID",
		},
		{
			name:    "other node attributes invalid",
			src:     "node {\n  name     = \"alpha\"\n  data_dir = \"./data\"\n  listen   = \"nope\"\n  call_timeout = \"soon\"\n}\n",
			loadErr: "Invalid listen address",
		},
		{
			name:      "misspelt data_dir",
			src:       "node {\n  name     = \"alpha\"\n  data-dir = \"./data\"\n}\n",
			loadErr:   `Did you mean "data_dir"?`,
			locateErr: `Did you mean "data_dir"?`,
		},
		{
			name:      "misspelt other attribute",
			src:       "node {\n  name     = \"alpha\"\n  data_dir = \"./data\"\n  lisen    = \"127.0.0.1:0\"\n}\n",
			loadErr:   `Did you mean "listen"?`,
			locateErr: `Did you mean "listen"?`,
		},
		{
			name:      "empty data_dir",
			src:       "node {\n  name     = \"alpha\"\n  data_dir = \"\"\n}\n",
			loadErr:   "data_dir must not be empty",
			locateErr: "data_dir must not be empty",
		},
		{
			name:      "bad name",
			src:       "node {\n  name     = \"-alpha\"\n  data_dir = \"./data\"\n}\n",
			loadErr:   "Invalid node name",
			locateErr: "Invalid node name",
		},
		{
			name:      "no node block",
			src:       "peer \"beta\" {\n  id = \"pn1nope\"\n}\n",
			loadErr:   "Missing node block",
			locateErr: "Missing node block",
		},
		{
			name:      "two node blocks",
			src:       node + node,
			loadErr:   "Duplicate node block",
			locateErr: "Duplicate node block",
		},
		{
			name:      "syntax error in a plugin block",
			src:       node + "plugin \"echo\" {\n",
			loadErr:   "Unclosed configuration block",
			locateErr: "Unclosed configuration block",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "alpha.hcl")
			if err := os.WriteFile(path, []byte(tt.src), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			checkErr(t, "Load", err, tt.loadErr)
			loc, err := Locate(path)
			checkErr(t, "Locate", err, tt.locateErr)
			want := Location{Name: "alpha", DataDir: filepath.Join(dir, "data")}
			if err == nil && loc != want {
				t.Errorf("Locate = %+v, want %+v", loc, want)
			}
		})
	}
}

func checkErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: %v, want no error", what, err)
	case want != "" && err == nil:
		t.Errorf("%s: no error, want one containing %q", what, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("%s: %v, want an error containing %q", what, err, want)
	case want != "" && (!errors.Is(err, ErrInvalid) || !errors.As(err, new(*DiagError))):
		t.Errorf("%s: error %T, want a *DiagError matching ErrInvalid", what, err)
	}
}

func TestLocateUnreadable(t *testing.T) {
	_, err := Locate(filepath.Join(t.TempDir(), "absent.hcl"))
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Fatalf("Locate(absent) = %v, want a wrapped fs.ErrNotExist that is not ErrInvalid", err)
	}
}

// TestLocateAgreesWithParse checks, over every test file, that Locate
// applies the same rules as Parse: see checkLocateAgrees.
func TestLocateAgreesWithParse(t *testing.T) {
	for _, path := range globTestdata(t, "testdata/*/*.hcl") {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(path), func(t *testing.T) { checkLocateAgrees(t, src, path) })
	}
}

// checkLocateAgrees fails t unless Locate's view of src agrees with
// Parse's: the same name and data_dir when Parse accepts src, and never a
// diagnostic that Parse does not also report.
func checkLocateAgrees(t *testing.T, src []byte, filename string) {
	t.Helper()
	f, parseDiags, _ := decodeFile(src, filename)
	loc, locDiags, _ := locateFile(src, filename)
	if !parseDiags.HasErrors() {
		if locDiags.HasErrors() {
			t.Fatalf("Parse accepts the file, Locate reports %v", locDiags)
		}
		if want := (Location{Name: f.Node.Name, DataDir: f.Node.DataDir}); loc != want {
			t.Fatalf("Locate = %+v, Parse's node block says %+v", loc, want)
		}
		return
	}
	count := map[string]int{}
	for _, d := range parseDiags {
		count[diagLine(d)]++
	}
	for _, d := range locDiags {
		line := diagLine(d)
		if count[line] == 0 {
			t.Fatalf("Locate reports %q, which Parse does not (Parse: %v)", line, parseDiags)
		}
		count[line]--
	}
}
