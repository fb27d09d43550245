package pluginclient_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/pluginsdk/pluginclient"
	"github.com/peernet/peernet/testing/peernettest"
)

// TestStartFailureVisible starts scripts that fail before, during and
// just after the handshake: the error says what went wrong in words that
// fit a script, with the last line it wrote to stderr, and the log has
// its last lines on stderr and its exit status at warn level.
func TestStartFailureVisible(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	const traceback = `echo 'Traceback (most recent call last):' >&2
echo '  File "plugin.py", line 1, in <module>' >&2
echo "ModuleNotFoundError: No module named 'grpc'" >&2
`
	tests := []struct {
		name    string
		script  string
		wantErr []string
		wantLog []string // nil: no warning expected
	}{
		{
			name:    "exits before the handshake",
			script:  "#!/bin/sh\n" + traceback + "exit 1\n",
			wantErr: []string{"exited (exit status 1) before completing its start", `last line on stderr: "ModuleNotFoundError: No module named 'grpc'"`},
			wantLog: []string{"[WARN]", "plugin failed to start", "exit=\"exit status 1\"", "Traceback (most recent call last):", "ModuleNotFoundError"},
		},
		{
			name:    "prints something else",
			script:  "#!/bin/sh\necho 'still here' >&2\necho 'hello, world'\nexec sleep 60\n",
			wantErr: []string{"hello, world", "the script (run by /bin/sh) did not print the handshake line", "docs/plugin-protocol.md", `"still here"`},
			wantLog: []string{"[WARN]", "plugin failed to start", "signal: killed", "still here"},
		},
		{
			name:    "exits after the handshake",
			script:  "#!/bin/sh\necho \"1|2|unix|$PLUGIN_UNIX_SOCKET_DIR/none|grpc|\"\necho 'NameError: name x is not defined' >&2\nexit 2\n",
			wantErr: []string{"describing plugin", "exited (exit status 2) before completing its start", "NameError"},
			wantLog: []string{"[WARN]", "exit=\"exit status 2\"", "NameError"},
		},
		{
			name:    "interpreter missing",
			script:  "#!/nonexistent/python3\n",
			wantErr: []string{"cannot run the interpreter /nonexistent/python3 named on the script's #! line"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "plugin")
			if err := os.WriteFile(path, []byte(tt.script), 0o755); err != nil {
				t.Fatal(err)
			}
			var logs peernettest.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := pluginclient.Launch(ctx, pluginclient.LaunchConfig{
				Name:         "py",
				Path:         path,
				StartTimeout: 2 * time.Second, // the script that prints something else never ends its start
				Logger:       hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &logs}),
			})
			if err == nil {
				_ = c.Stop(ctx)
				t.Fatal("Launch succeeded")
			}
			t.Logf("error: %v", err)
			for _, m := range tt.wantErr {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not say %q", err, m)
				}
			}
			if strings.Contains(err.Error(), "pluginsdk.Serve") {
				t.Errorf("error %q gives a Go hint for a script", err)
			}
			for _, m := range tt.wantLog {
				if !strings.Contains(logs.String(), m) {
					t.Errorf("log does not say %q:\n%s", m, logs.String())
				}
			}
		})
	}
}
