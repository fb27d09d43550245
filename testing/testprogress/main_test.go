package main

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestRun runs the command on a module with a passing, a failing, a
// broken and a test-less package, and checks its lines and exit code.
func TestRun(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not installed")
	}
	var stdout, stderr bytes.Buffer
	code := run("testdata/mod", []string{"-count=1", "./..."}, &stdout, &stderr)
	out := stdout.String()
	if code == 0 {
		t.Errorf("exit code 0 with a failing package\n%s", out)
	}
	for _, re := range []string{
		`(?m)^ok     example.com/progress/pass \S+s$`,
		`(?m)^FAIL   example.com/progress/fail \S+s$`,
		`(?m)^\?      example.com/progress/notests \[no test files\]$`,
		`(?m)^FAIL   example.com/progress/broken`,
		`the reason it failed`,     // a failing test's output
		`undefined: undefinedName`, // the compiler's error
		`(?m)^1 packages passed, 2 failed, 1 without tests$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
	// Passing tests stay quiet.
	if strings.Contains(out, "passing quietly") {
		t.Errorf("output has the log of a passing test:\n%s", out)
	}

	stdout.Reset()
	if code := run("testdata/mod", []string{"-count=1", "./pass"}, &stdout, &stderr); code != 0 {
		t.Errorf("exit code %d for a passing package\n%s%s", code, stdout.String(), stderr.String())
	}
}

// TestQuiet checks the "still running" line.
func TestQuiet(t *testing.T) {
	var out bytes.Buffer
	p := newPrinter(&out)
	p.event(event{Action: "run", Package: "x", Test: "TestSlow"})
	p.event(event{Action: "run", Package: "x", Test: "TestSlow/sub"})
	start := p.last
	p.tick(start.Add(quiet / 2))
	if out.Len() != 0 {
		t.Errorf("a line before %s of quiet: %q", quiet, out.String())
	}
	p.tick(start.Add(quiet + quiet/3))
	if got := out.String(); !regexp.MustCompile(`^\.\.\.    still running: x TestSlow \(\d+s\)\n$`).MatchString(got) {
		t.Errorf("after %s of quiet: %q", quiet, got)
	}
}
