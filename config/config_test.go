package config

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// TestValid loads every testdata/valid/*.hcl and compares the File, as
// JSON, with its .golden.json.
func TestValid(t *testing.T) {
	paths := globTestdata(t, "testdata/valid/*.hcl")
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Load(path)
			if err != nil {
				t.Fatalf("Load(%s): %v", path, err)
			}
			got := normalise(t, dumpJSON(t, f))
			checkGolden(t, strings.TrimSuffix(path, ".hcl")+".golden.json", got)
		})
	}
}

// TestInvalid loads every testdata/invalid/*.hcl and compares the error
// text with its .golden.
func TestInvalid(t *testing.T) {
	paths := globTestdata(t, "testdata/invalid/*.hcl")
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Load(path)
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want an error", path, f)
			}
			var de *DiagError
			if !errors.As(err, &de) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load(%s) error %T %v, want a *DiagError matching ErrInvalid", path, err, err)
			}
			for _, d := range de.Diagnostics {
				if d.Severity != hcl.DiagError || d.Subject == nil || d.Subject.Filename != path || d.Subject.Start.Line < 1 {
					t.Errorf("diagnostic without a position in %s: %+v", path, d)
				}
			}
			checkGolden(t, strings.TrimSuffix(path, ".hcl")+".golden", normalise(t, []byte(err.Error()+"\n")))
		})
	}
}

func globTestdata(t testing.TB, pattern string) []string {
	t.Helper()
	paths, err := filepath.Glob(pattern)
	if err != nil || len(paths) == 0 {
		t.Fatalf("no files match %s (%v)", pattern, err)
	}
	return paths
}

// normalise replaces the absolute path of testdata, which differs between
// checkouts, with $TESTDATA.
func normalise(t testing.TB, b []byte) []byte {
	t.Helper()
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(b, []byte(abs), []byte("$TESTDATA"))
}

func checkGolden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// dumpJSON renders v with struct fields in declaration order, durations and
// log levels as text, PeerIDs in their text form and plugin config inline.
func dumpJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(dumpValue(reflect.ValueOf(v)), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

type orderedObject struct {
	keys []string
	vals []any
}

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(o.vals[i])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func dumpValue(v reflect.Value) any {
	switch x := v.Interface().(type) {
	case host.AllowList:
		if x.Everyone() {
			return "every trusted peer"
		}
		return dumpValue(reflect.ValueOf(x.Peers()))
	case time.Duration:
		return x.String()
	case hclog.Level:
		return x.String()
	case encoding.TextMarshaler:
		s, _ := x.MarshalText()
		return string(s)
	case []byte:
		if x == nil {
			return nil
		}
		return json.RawMessage(x)
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return dumpValue(v.Elem())
	case reflect.Struct:
		var o orderedObject
		for i := range v.NumField() {
			if v.Field(i).Kind() == reflect.Func {
				continue // a Go predicate the file cannot set
			}
			o.keys = append(o.keys, v.Type().Field(i).Name)
			o.vals = append(o.vals, dumpValue(v.Field(i)))
		}
		return o
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = dumpValue(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		out := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			out[it.Key().String()] = dumpValue(it.Value())
		}
		return out
	}
	return v.Interface()
}

func TestLoadUnreadable(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.hcl"))
	var de *DiagError
	if !errors.Is(err, fs.ErrNotExist) || errors.As(err, &de) || errors.Is(err, ErrInvalid) {
		t.Fatalf("Load(absent) = %v, want a wrapped fs.ErrNotExist that is not a DiagError", err)
	}
}

func TestDiagErrorUnwrap(t *testing.T) {
	_, err := Parse([]byte("node {\n  nme = 1\n}\n"), "x.hcl")
	var diags hcl.Diagnostics
	if !errors.As(err, &diags) || len(diags) != 3 {
		t.Fatalf("errors.As(%v, hcl.Diagnostics) = %v, want 3 diagnostics", err, diags)
	}
	want := "x.hcl:1:1: Missing required attribute: The node block needs data_dir"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("Error() = %q, want it to contain %q", err, want)
	}
}

func TestDiagErrorFormat(t *testing.T) {
	_, err := Parse([]byte("node {\n  name = \"a\"\n  data_dir = \"d\"\n  listen = \"nope\"\n}\n"), "x.hcl")
	var de *DiagError
	if !errors.As(err, &de) {
		t.Fatalf("Parse error %v, want a *DiagError", err)
	}
	var buf bytes.Buffer
	if err := de.Format(&buf, 0, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Invalid listen address", "on x.hcl line 4", `listen = "nope"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("Format output lacks %q:\n%s", want, buf.String())
		}
	}
}

// TestParseRelativePaths checks that relative paths are anchored at the
// file's directory, not the working directory.
func TestParseRelativePaths(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "plugins", "p")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "node.hcl")
	src := `node {
  name     = "a"
  data_dir = "state/../data"
}
plugin "p" {
  command = "plugins/p"
  sha256  = "` + strings.Repeat("ab", 32) + `"
}
`
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != cfg || f.Node.DataDir != filepath.Join(dir, "data") || f.Plugins[0].Path != bin {
		t.Errorf("paths = %q, %q, %q; want %q, %q, %q", f.Path, f.Node.DataDir, f.Plugins[0].Path,
			cfg, filepath.Join(dir, "data"), bin)
	}
}

func TestHostConfig(t *testing.T) {
	logger := hclog.NewNullLogger()
	tests := []struct {
		path string
		want host.Config
	}{
		{"testdata/valid/minimal.hcl", host.Config{
			Name:                   "alpha",
			DataDir:                mustAbs(t, "testdata/valid/data/alpha"),
			ListenAddr:             host.DefaultListenAddr,
			Logger:                 logger,
			CallTimeout:            host.DefaultCallTimeout,
			HandshakeTimeout:       host.DefaultHandshakeTimeout,
			MaxHandshakes:          host.DefaultMaxHandshakes,
			MaxMessageSize:         wire.DefaultMaxMessageSize,
			MaxInflightPerPeer:     host.DefaultMaxInflightPerPeer,
			MaxHandshakesPerSource: host.DefaultMaxHandshakesPerSource,
			MaxConnsPerPeer:        host.DefaultMaxConnsPerPeer,
			MaxPeerMemory:          host.DefaultMaxPeerMemory,
			WriteTimeout:           host.DefaultWriteTimeout,
			PingInterval:           host.DefaultPingInterval,
			ReconnectMin:           host.DefaultReconnectMin,
			ReconnectMax:           host.DefaultReconnectMax,
		}},
		{"testdata/valid/full.hcl", host.Config{
			Name:                   "alpha",
			DataDir:                "/var/lib/peernet/alpha",
			ListenAddr:             "0.0.0.0:4040",
			Logger:                 logger,
			CallTimeout:            7 * time.Second,
			HandshakeTimeout:       3 * time.Second,
			MaxHandshakes:          32,
			MaxMessageSize:         1 << 20,
			MaxInflightPerPeer:     512,
			MaxHandshakesPerSource: 8,
			MaxConnsPerPeer:        2,
			MaxPeerMemory:          16 << 20,
			WriteTimeout:           20 * time.Second,
			PingInterval:           15 * time.Second,
			ReconnectMin:           250 * time.Millisecond,
			ReconnectMax:           90 * time.Second,
		}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			f, err := Load(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.HostConfig(logger); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("HostConfig() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func mustAbs(t testing.TB, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestAllowResolution checks the semantics the golden files only show
// indirectly: labels resolve to their peer's ID, duplicates collapse, an
// absent list admits every trusted peer and an empty one admits no one.
func TestAllowResolution(t *testing.T) {
	beta := trust.MustParsePeerID("pn1byhraeiscmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha")
	delta := trust.MustParsePeerID("pn1dqor4hzaeercgjbfeytsqkjkfmwc2lrpgaytemzugu3doobzhi5v7k2zlu")
	full, err := Load("testdata/valid/full.hcl")
	if err != nil {
		t.Fatal(err)
	}
	edges, err := Load("testdata/valid/edges.hcl")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  host.AllowList
		want host.AllowList
	}{
		{"labels and ids, deduplicated", full.Plugins[0].Handles[0].Allow, host.AllowOnly(beta, delta)},
		{"absent means everyone", full.Plugins[0].Handles[1].Allow, host.AllowEveryone()},
		{"empty means no one", edges.Plugins[0].Handles[0].Allow, host.AllowOnly()},
	}
	for _, tt := range tests {
		if !tt.got.Equal(tt.want) {
			t.Errorf("%s: Allow = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestStarter(t *testing.T) {
	tests := []struct {
		name    string
		wantErr bool
	}{
		{"alpha", false},
		{"node-2.lab_x", false},
		{`my "node"`, true},
		{"${var.x}", true},
		{"%{if true}x%{endif}", true},
		{"line\nbreak", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := Starter(tt.name, "", false)
			f, err := Parse(src, filepath.Join(t.TempDir(), "peernet.hcl"))
			if tt.wantErr {
				var de *DiagError
				if !errors.As(err, &de) || len(de.Diagnostics) != 1 || de.Diagnostics[0].Summary != "Invalid node name" {
					t.Fatalf("Parse(Starter(%q)) error = %v, want only an invalid node name", tt.name, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(Starter(%q)): %v\n%s", tt.name, err, src)
			}
			if f.Node.Name != tt.name || f.Node.Listen != StarterListen || f.Discovery.MDNS || len(f.Peers) != 0 || len(f.Plugins) != 0 {
				t.Errorf("Starter(%q) parsed to %+v", tt.name, f)
			}
		})
	}
}

// TestStarterSettings checks that init's -listen and -mdns reach the
// parsed file, and that the default is this machine only with mDNS off.
func TestStarterSettings(t *testing.T) {
	for _, tt := range []struct {
		listen, want string
		mdns         bool
	}{
		{"", "127.0.0.1:4040", false},
		{":4040", ":4040", true},
		{"[::1]:5000", "[::1]:5000", false},
	} {
		f, err := Parse(Starter("alpha", tt.listen, tt.mdns), filepath.Join(t.TempDir(), "peernet.hcl"))
		if err != nil {
			t.Fatalf("Starter(alpha, %q, %v): %v", tt.listen, tt.mdns, err)
		}
		if f.Node.Listen != tt.want || f.Discovery.MDNS != tt.mdns || filepath.Base(f.Node.DataDir) != "data" {
			t.Errorf("Starter(alpha, %q, %v) parsed to listen %q, mdns %v, data dir %s", tt.listen, tt.mdns, f.Node.Listen, f.Discovery.MDNS, f.Node.DataDir)
		}
	}
	_, err := Parse(Starter("alpha", "nope", false), filepath.Join(t.TempDir(), "peernet.hcl"))
	var de *DiagError
	if !errors.As(err, &de) || de.Diagnostics[0].Summary != "Invalid listen address" {
		t.Errorf("Starter with listen \"nope\": %v; want an invalid listen address", err)
	}
}

// TestStarterExamples uncomments the starter's example blocks, fills in a
// real peer ID, binary and digest, and checks that the result parses: the
// examples an operator is invited to uncomment must be valid.
func TestStarterExamples(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "plugins", "echo")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out []string
	uncommented := 0
	for _, line := range strings.Split(string(Starter("alpha", ":4040", true)), "\n") {
		rest, ok := strings.CutPrefix(line, "# ")
		if ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "}") ||
			strings.HasPrefix(rest, "peer ") || strings.HasPrefix(rest, "plugin ") || strings.HasPrefix(rest, "telemetry ")) {
			line = rest
			uncommented++
		}
		out = append(out, line)
	}
	src := strings.Join(out, "\n")
	src = strings.Replace(src, `"pn1..."`, `"pn1byhraeiscmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha"`, 1)
	src = strings.Replace(src, `"..."`, `"`+strings.Repeat("0", 64)+`"`, 1)
	f, err := Parse([]byte(src), filepath.Join(dir, "peernet.hcl"))
	if err != nil {
		t.Fatalf("uncommented starter does not parse: %v\n%s", err, src)
	}
	if uncommented < 10 || len(f.Peers) != 1 || len(f.Plugins) != 1 || len(f.Plugins[0].Handles) != 1 || f.Telemetry.MetricsListen == "" {
		t.Errorf("uncommented %d lines; parsed %+v", uncommented, f)
	}
}

func TestHCLQuote(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "tab\tnl\ncr\r", "${x}", "%{x}", "$${x}", "$$", "$", "{}", "ctl\x01\x7f", "üñí©ødé"} {
		src := "v = " + hclQuote(s) + "\n"
		p, diags := parseAttr(src)
		if diags.HasErrors() {
			t.Errorf("hclQuote(%q) = %s: %v", s, hclQuote(s), diags)
			continue
		}
		if p != s {
			t.Errorf("hclQuote(%q) = %s evaluates to %q", s, hclQuote(s), p)
		}
	}
}

// parseAttr evaluates the attribute v in src.
func parseAttr(src string) (string, hcl.Diagnostics) {
	f, diags := hclsyntax.ParseConfig([]byte(src), "q.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return "", diags
	}
	attrs, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		return "", diags
	}
	v, diags := attrs["v"].Expr.Value(nil)
	if diags.HasErrors() {
		return "", diags
	}
	return v.AsString(), nil
}
