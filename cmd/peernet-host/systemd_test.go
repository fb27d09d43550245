package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const unitFile = "../../examples/systemd/peernet-host.service"

// TestSystemdUnit checks examples/systemd/peernet-host.service with
// systemd's own tools, and that it has the hardening docs/operating.md
// promises.
func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	service := unitSection(string(data), "Service")
	for key, want := range map[string]string{
		"User":            "peernet",
		"StateDirectory":  "peernet",
		"ProtectSystem":   "strict",
		"NoNewPrivileges": "yes",
		"ExecReload":      "/bin/kill -HUP $MAINPID",
		"ExecStart":       "/usr/local/bin/peernet-host run -config /etc/peernet/peernet.hcl",
	} {
		if got := service[key]; len(got) != 1 || got[0] != want {
			t.Errorf("[Service] %s = %q, want %q", key, got, want)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd); not verifying the unit with it")
	}
	// verify checks that ExecStart's program exists; the test binary
	// stands in for an installed peernet-host.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "peernet-host.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(data, []byte("/usr/local/bin/peernet-host"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	// verify reports many problems (unknown keys, bad values) as warnings
	// with exit status 0, so any output fails the test too.
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The exposure score runs from 0 (fully sandboxed) to 10; systemd calls
	// below 2 "OK". --threshold is in tenths.
	cmd := exec.Command(analyze, "security", "--offline=true", "--threshold=20", "--no-pager", unit)
	out, err = cmd.CombinedOutput()
	switch {
	case bytes.Contains(out, []byte("unrecognized option")):
		t.Logf("systemd-analyze security has no --offline (systemd before 250); not checking the exposure score")
	case err != nil:
		t.Errorf("systemd-analyze security: exposure above 2.0 or an error: %v\n%s", err, out)
	default:
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Logf("systemd-analyze security: %s", lines[len(lines)-1])
	}
}

// unitSection returns the keys of one section of a unit file, with every
// value each is given.
func unitSection(unit, name string) map[string][]string {
	keys := map[string][]string{}
	in := false
	for _, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			in = line == "["+name+"]"
		case in:
			k, v, _ := strings.Cut(line, "=")
			keys[strings.TrimSpace(k)] = append(keys[strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return keys
}
