package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peernet/peernet/config"
	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/trust"
)

// TestTemplates renders the example configurations as the demo does and
// checks that config accepts them, so the committed templates cannot drift
// from the configuration schema. The full demo runs under "make demo"; the
// same operations are tested end to end in cmd/peernet-host.
func TestTemplates(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plugin := filepath.Join(dir, "plugin")
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := strings.Repeat("ab", 32)
	alphaID, betaID := peerID(t), peerID(t)

	tests := []struct {
		tmpl   string
		fields map[string]string
		check  func(t *testing.T, f *config.File)
	}{
		{
			tmpl: "examples/alpha/alpha.hcl.tmpl",
			fields: map[string]string{
				"Listen": "127.0.0.1:4040", "BetaID": betaID.String(),
				"EchoPath": plugin, "EchoSHA256": sum, "KVPath": plugin, "KVSHA256": sum,
				"KVDir": filepath.Join(dir, "kv"), "Metrics": "127.0.0.1:9090",
			},
			check: func(t *testing.T, f *config.File) {
				if len(f.Plugins) != 2 || f.Telemetry.MetricsListen != "127.0.0.1:9090" {
					t.Errorf("plugins %+v, telemetry %+v", f.Plugins, f.Telemetry)
				}
				for _, h := range f.Plugins[1].Handles {
					if h.Name == "kv.put" && !h.Allow.Equal(host.AllowOnly(betaID)) {
						t.Errorf("kv.put allows %v, want beta only", h.Allow)
					}
				}
			},
		},
		{
			tmpl: "examples/beta/beta.hcl.tmpl",
			fields: map[string]string{
				"Listen": "127.0.0.1:4041", "AlphaID": alphaID.String(),
				"EchoPath": plugin, "EchoSHA256": sum,
			},
			check: func(t *testing.T, f *config.File) {
				if len(f.Plugins) != 1 || len(f.Plugins[0].Handles) != 1 || !f.Plugins[0].Handles[0].Allow.Equal(host.AllowOnly(alphaID)) {
					t.Errorf("plugins %+v; want echo open to alpha only", f.Plugins)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.tmpl), func(t *testing.T) {
			out, err := renderFile(filepath.Join(root, tt.tmpl), tt.fields)
			if err != nil {
				t.Fatal(err)
			}
			f, err := config.Parse(out, filepath.Join(dir, "node.hcl"))
			if err != nil {
				t.Fatalf("the rendered template is invalid:\n%v\n%s", err, out)
			}
			tt.check(t, f)

			// A field the template needs but the demo does not give is an
			// error, not an empty string in the file.
			for k := range tt.fields {
				short := map[string]string{}
				for k2, v := range tt.fields {
					if k2 != k {
						short[k2] = v
					}
				}
				if _, err := renderFile(filepath.Join(root, tt.tmpl), short); err == nil {
					t.Errorf("rendering without %s succeeded", k)
				}
			}
		})
	}
}

func peerID(t *testing.T) trust.PeerID {
	t.Helper()
	id, _, err := trust.LoadOrCreateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return id.PeerID()
}

func TestQuoteAll(t *testing.T) {
	tests := []struct{ in, want string }{
		{"status", "status"},
		{"hello from beta", "'hello from beta'"},
		{`{"key":"k"}`, `'{"key":"k"}'`},
		{"it's", `'it'\''s'`},
		{"", "''"},
	}
	for _, tt := range tests {
		if got := quoteAll([]string{tt.in})[0]; got != tt.want {
			t.Errorf("quoteAll(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
