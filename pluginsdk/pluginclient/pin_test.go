package pluginclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/pluginclient"
	"github.com/peernet/peernet/pluginsdk/plugintest"
)

// echoVersion builds plugins/echo to report version v, into a new
// directory, and returns the binary's path.
func echoVersion(t *testing.T, v string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "echo")
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+v, "-o", path, echoPlugin).CombinedOutput()
	if err != nil {
		t.Fatalf("building echo version %s: %v\n%s", v, err, out)
	}
	return path
}

// patchInPlace replaces every occurrence of old in the file at path with
// new (of the same length) through WriteAt, as an attacker with write
// access to the file would: same inode, no rename. It returns the file's
// new SHA-256.
func patchInPlace(t *testing.T, path, old, new string) string {
	t.Helper()
	if len(old) != len(new) {
		t.Fatal("patchInPlace: lengths differ")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for off := 0; ; {
		i := bytes.Index(data[off:], []byte(old))
		if i < 0 {
			break
		}
		off += i
		if _, err := f.WriteAt([]byte(new), int64(off)); err != nil {
			t.Fatal(err)
		}
		off += len(old)
		n++
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("patchInPlace: %q not found in %s", old, path)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("patchInPlace: the file was replaced, not patched")
	}
	sum, err := fileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func fileSHA256(path string) (string, error) {
	var pc pluginclient.PinCache
	p, err := pc.Pin(path, "")
	if err != nil {
		return "", err
	}
	defer p.Release()
	return p.SHA256(), nil
}

func launchPinned(t *testing.T, path string, pin *pluginclient.Pinned, sum string, env ...string) (*pluginclient.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pluginclient.Launch(ctx, pluginclient.LaunchConfig{
		Name:   "echo",
		Path:   path,
		SHA256: sum,
		Pinned: pin,
		Env:    env,
		Logger: plugintest.TestLogger(t),
	})
	if err == nil {
		t.Cleanup(func() { stopNowT(c) })
	}
	return c, err
}

func stopNowT(c *pluginclient.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.Stop(ctx)
}

// TestPinnedBinaryPatched patches the binary in place after pinning it: a
// launch from the pinned copy (a restart) runs the content that was
// hashed, while the file now has another digest.
func TestPinnedBinaryPatched(t *testing.T) {
	const original, patched = "pin-original-0001", "pin-PATCHED!-0001"
	path := echoVersion(t, original)
	sum, err := fileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	var pc pluginclient.PinCache
	pin, err := pc.Pin(path, sum)
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Release()
	first, err := launchPinned(t, path, pin, sum)
	if err != nil {
		t.Fatal(err)
	}
	if v := first.Description().Version; v != original {
		t.Fatalf("first launch reports %q, want %q", v, original)
	}
	// The process runs the sealed copy, and does not keep a descriptor of
	// it.
	proc := fmt.Sprintf("/proc/%d/", first.Pid())
	if exe, err := os.Readlink(proc + "exe"); err != nil || !strings.HasPrefix(exe, "/memfd:peernet-plugin") {
		t.Fatalf("the plugin executes %q (%v), want the sealed copy", exe, err)
	}
	ents, err := os.ReadDir(proc + "fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, _ := os.Readlink(proc + "fd/" + e.Name()); strings.HasPrefix(l, "/memfd:") {
			t.Errorf("the plugin inherited descriptor %s -> %s", e.Name(), l)
		}
	}
	// The running plugin does not execute the file: it can be opened for
	// writing (a file being executed could not: ETXTBSY).
	newSum := patchInPlace(t, path, original, patched)
	if newSum == sum {
		t.Fatal("the patch did not change the file's digest")
	}
	stopNowT(first)

	restarted, err := launchPinned(t, path, pin, sum)
	if err != nil {
		t.Fatal(err)
	}
	if v := restarted.Description().Version; v != original {
		t.Fatalf("restart from the pinned copy reports %q, want %q", v, original)
	}
	if out, err := restarted.Call(context.Background(), &pluginsdk.Request{Handle: "echo", Args: []byte("hi")}); err != nil || string(out) != "hi" {
		t.Fatalf("echo = %q, %v", out, err)
	}

	// The file itself no longer passes the check, and it is the patched
	// content that a fresh pin of the new digest runs.
	if _, err := launchPinned(t, path, nil, sum); !errors.Is(err, pluginclient.ErrChecksum) {
		t.Fatalf("launching the patched file with the old digest: %v, want %v", err, pluginclient.ErrChecksum)
	}
	c, err := launchPinned(t, path, nil, newSum)
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Description().Version; v != patched {
		t.Fatalf("the patched file reports %q, want %q", v, patched)
	}
	// A pinned copy is only run under its own digest.
	if _, err := launchPinned(t, path, pin, newSum); !errors.Is(err, pluginclient.ErrChecksum) {
		t.Fatalf("launching a pinned copy under another digest: %v, want %v", err, pluginclient.ErrChecksum)
	}
}

// TestPinnedScript pins a "#!" script, changes it in place, and launches the
// pinned copy: the interpreter runs the script as pinned, with the sealed
// copy as its one inherited descriptor besides stdio.
func TestPinnedScript(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	const va, vb = "script-target-a", "script-target-b"
	// Two targets from one build: the second is a copy patched to report
	// version vb.
	dir := t.TempDir()
	data, err := os.ReadFile(echoVersion(t, va))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"echo-a", "echo-b"} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	patchInPlace(t, filepath.Join(dir, "echo-b"), va, vb)
	script := filepath.Join(dir, "plugin.sh")
	// ls lists the shell's own descriptors (from a subshell, so that the
	// redirection does not change the shell's), then the shell becomes
	// the plugin.
	body := fmt.Sprintf("#!/bin/sh -e\n(/bin/ls -l /proc/$$/fd/) >\"$FDLOG\"\nexec %s \"$@\"\n", filepath.Join(dir, "echo-a"))
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := fileSHA256(script)
	if err != nil {
		t.Fatal(err)
	}
	var pc pluginclient.PinCache
	pin, err := pc.Pin(script, sum)
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Release()
	if got := pin.Interpreter(); len(got) != 2 || got[0] != "/bin/sh" || got[1] != "-e" {
		t.Fatalf("interpreter %q, want [/bin/sh -e]", got)
	}
	patchInPlace(t, script, "echo-a", "echo-b")

	fdlog := filepath.Join(dir, "fds")
	c, err := launchPinned(t, script, pin, sum, "FDLOG="+fdlog)
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Description().Version; v != va {
		t.Fatalf("pinned script runs the plugin reporting %q, want %q (the script as pinned)", v, va)
	}
	checkScriptFDs(t, fdlog)

	// The file as it is now runs the other target.
	c, err = launchPinned(t, script, nil, "", "FDLOG="+fdlog)
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Description().Version; v != vb {
		t.Fatalf("the changed script runs the plugin reporting %q, want %q", v, vb)
	}
}

// checkScriptFDs checks the shell's descriptors as ls -l listed them into
// fdlog: against those of a shell the test starts itself the same way
// (stdio, and whatever this process has that is not close-on-exec), the
// launch adds descriptor 3, the call channel, and descriptor 4, the sealed
// copy, and nothing else but the shell's own reading of that copy.
func checkScriptFDs(t *testing.T, fdlog string) {
	t.Helper()
	baseLog := fdlog + ".base"
	cmd := exec.Command("/bin/sh", "-c", `(/bin/ls -l /proc/$$/fd/) >"$FDLOG"`)
	cmd.Env = []string{"FDLOG=" + baseLog}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("listing a plain shell's descriptors: %v\n%s", err, out)
	}
	base := listedFDs(t, baseLog)
	seen3, seen4 := false, false
	for fd, target := range listedFDs(t, fdlog) {
		switch {
		case strings.HasPrefix(target, "/memfd:peernet-plugin"):
			seen4 = seen4 || fd == "4"
		case fd == "3" && strings.HasPrefix(target, "socket:"):
			seen3 = true
		case base[fd] == "":
			t.Errorf("the script's interpreter inherited descriptor %s -> %s", fd, target)
		}
	}
	if !seen3 || !seen4 {
		t.Errorf("descriptor 3 is not the channel or 4 not the sealed copy: %q", listedFDs(t, fdlog))
	}
}

// listedFDs parses ls -l output into descriptor -> target.
func listedFDs(t *testing.T, path string) map[string]string {
	t.Helper()
	out, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fds := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		left, target, ok := strings.Cut(line, " -> ")
		if !ok {
			continue // "total 0"
		}
		f := strings.Fields(left)
		fds[f[len(f)-1]] = target
	}
	return fds
}
