package trust

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLockDirInProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() })

	_, err = LockDir(dir)
	if !errors.Is(err, ErrDirLocked) {
		t.Fatalf("second LockDir err = %v, want ErrDirLocked", err)
	}
	for _, want := range []string{dir, "another peernet node", "(pid " + strconv.Itoa(os.Getpid()) + ")"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, lockFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v, %v; want mode 0600", fi.Mode().Perm(), err)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	second, err := LockDir(dir)
	if err != nil {
		t.Fatalf("LockDir after Close: %v", err)
	}
	second.Close()

	// A different directory is independent.
	other, err := LockDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
}

// lockHelperEnv tells the re-executed test binary to act as
// lockHelperProcess.
const lockHelperEnv = "PEERNET_TRUST_LOCK_HELPER"

// TestLockHelperProcess is not a test: run with lockHelperEnv set to
// "hold:DIR" it locks DIR, prints "locked" and holds the lock until its
// stdin closes; with "try:DIR" it prints the outcome of one LockDir.
func TestLockHelperProcess(t *testing.T) {
	mode, dir, ok := strings.Cut(os.Getenv(lockHelperEnv), ":")
	if !ok {
		t.Skip("helper process for the cross-process lock tests")
	}
	l, err := LockDir(dir)
	switch {
	case errors.Is(err, ErrDirLocked):
		fmt.Println("dir locked:", err)
		os.Exit(0)
	case err != nil:
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	if mode == "hold" {
		io.Copy(io.Discard, os.Stdin)
	}
	l.Close()
	os.Exit(0)
}

type lockHelper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startLockHelper runs the test binary as TestLockHelperProcess in mode
// ("hold" or "try") on dir and returns once it has printed its first line,
// which it returns too.
func startLockHelper(tb testing.TB, mode, dir string) (*lockHelper, string) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$", "-test.count=1")
	// atexit_sleep_ms: under -race the helper would otherwise linger 1 s
	// on exit.
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+mode+":"+dir, "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	h := &lockHelper{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := h.out.ReadString('\n') // blocks until the helper has acted
	if err != nil {
		tb.Fatalf("reading from helper: %v (got %q)", err, line)
	}
	return h, strings.TrimSpace(line)
}

// release ends the helper, by closing its stdin or by killing it, and waits
// for it to exit.
func (h *lockHelper) release(tb testing.TB, kill bool) {
	tb.Helper()
	if kill {
		h.cmd.Process.Kill()
	} else {
		h.stdin.Close()
	}
	io.Copy(io.Discard, h.out)
	err := h.cmd.Wait()
	if !kill && err != nil {
		tb.Fatalf("helper: %v", err)
	}
}

func TestLockDirCrossProcess(t *testing.T) {
	if os.Getenv(lockHelperEnv) != "" {
		t.Skip("in a helper process")
	}
	tests := []struct {
		name string
		kill bool // release by SIGKILL rather than by Close
	}{
		{"released by Close", false},
		{"released by process death", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			h, line := startLockHelper(t, "hold", dir)
			if line != "locked" {
				t.Fatalf("helper: %q, want locked", line)
			}
			_, err := LockDir(dir)
			if !errors.Is(err, ErrDirLocked) {
				t.Fatalf("LockDir while another process holds it: err = %v, want ErrDirLocked", err)
			}
			if want := fmt.Sprintf("(pid %d)", h.cmd.Process.Pid); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name the holder %s", err, want)
			}
			h.release(t, tt.kill)
			l, err := LockDir(dir)
			if err != nil {
				t.Fatalf("LockDir after the other process let go: %v", err)
			}
			l.Close()
		})
	}

	t.Run("other process sees our lock", func(t *testing.T) {
		dir := t.TempDir()
		l, err := LockDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, line := startLockHelper(t, "try", dir)
		if !strings.HasPrefix(line, "dir locked:") {
			t.Fatalf("helper: %q, want dir locked", line)
		}
		l.Close()
		_, line = startLockHelper(t, "try", dir)
		if line != "locked" {
			t.Fatalf("helper after Close: %q, want locked", line)
		}
	})
}
