//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peernet/peernet/testing/peernettest"
	"github.com/peernet/peernet/testing/poll"
)

// TestInstall runs the install commands of README.md and docs/operating.md,
// as written, in a fresh git repository holding this work tree's files (a
// clone of what is being tested), and checks what they install: exactly
// peernet-host, peernet-echo and peernet-kv, none named like a system
// command, and a peernet-host that reports the commit it was built from.
// For README.md it then follows the first-run steps that come after the
// install commands, as written (firstRun).
func TestInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries twice")
	}
	for _, tool := range []string{"git", "make", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	if err := exec.Command("git", "-C", "../..", "rev-parse", "--is-inside-work-tree").Run(); err != nil {
		t.Skip("the source is not a git work tree; nothing to clone")
	}
	clone, head := snapshot(t, "../..")
	gomodcache := goEnv(t, "GOMODCACHE")

	for _, doc := range []struct {
		file string
		env  func(dir string) []string // where the commands should install
		bin  func(dir string) string
	}{
		// README: make install, into $GOBIN when set.
		{"README.md", func(dir string) []string { return []string{"GOBIN=" + dir} }, func(dir string) string { return dir }},
		// docs/operating.md: go build -o "$(go env GOPATH)/bin/…". The
		// module cache stays where it is, so nothing is downloaded.
		{"docs/operating.md", func(dir string) []string {
			return []string{"GOBIN=", "GOPATH=" + dir, "GOMODCACHE=" + gomodcache}
		}, func(dir string) string { return filepath.Join(dir, "bin") }},
	} {
		t.Run(doc.file, func(t *testing.T) {
			cmds := installCommands(t, filepath.Join(clone, doc.file))
			dir := t.TempDir()
			for _, c := range cmds {
				sh := exec.Command("sh", "-c", c)
				sh.Dir = clone
				// Builds stamp the commit as they would for an operator
				// (GOFLAGS overrides a -buildvcs=false in go env).
				sh.Env = append(os.Environ(), append(doc.env(dir), "GOFLAGS=-buildvcs=auto")...)
				if out, err := sh.CombinedOutput(); err != nil {
					t.Fatalf("%s: %s: %v\n%s", doc.file, c, err, out)
				}
			}
			bin := doc.bin(dir)
			entries, err := os.ReadDir(bin)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if want := []string{"peernet-echo", "peernet-host", "peernet-kv"}; !slices.Equal(names, want) {
				t.Errorf("%s installs %q, want %q", doc.file, names, want)
			}
			for _, n := range names {
				if shadowed := systemCommand(n); shadowed != "" {
					t.Errorf("%s installs %s, which shadows %s", doc.file, n, shadowed)
				}
			}

			// The plugins are plugins: run by hand, they say so.
			r, err := runCLI(filepath.Join(bin, "peernet-echo"), "")
			if err != nil || r.code == 0 || !strings.Contains(r.stderr+r.stdout, "plugin") {
				t.Errorf("peernet-echo run by hand: %v %v", err, r)
			}
			r, err = runCLI(filepath.Join(bin, "peernet-host"), "", "version", "-json")
			if err != nil || r.code != exitOK {
				t.Fatalf("installed peernet-host version -json: %v %v", err, r)
			}
			var v versionInfo
			if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
				t.Fatal(err)
			}
			if v.Revision != head || v.Modified || !strings.Contains(v.Version, head[:12]) {
				t.Errorf("installed peernet-host reports version %q revision %q modified %v; the clone is at %s",
					v.Version, v.Revision, v.Modified, head)
			}
			if doc.file == "README.md" {
				firstRun(t, clone, bin, filepath.Join(clone, doc.file), len(cmds))
			}
		})
	}
}

// installCommands returns the install commands of the first sh block of
// file's "## Install" section: its first lines that run make or go.
func installCommands(t *testing.T, file string) []string {
	t.Helper()
	blocks := installBlocks(t, file)
	var cmds []string
	for _, line := range blocks[0] {
		if !strings.HasPrefix(line, "make ") && !strings.HasPrefix(line, "go ") {
			break
		}
		cmds = append(cmds, line)
	}
	if len(cmds) == 0 {
		t.Fatalf("%s has no install commands in an sh block under ## Install", file)
	}
	return cmds
}

// installBlocks returns the non-empty lines of each sh block of file's
// "## Install" section.
func installBlocks(t *testing.T, file string) [][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks [][]string
	section, block := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			section = line == "## Install"
		case section && line == "```sh":
			block = true
			blocks = append(blocks, nil)
		case section && block && line == "```":
			block = false
		case section && block:
			if line = strings.TrimSpace(line); line != "" {
				blocks[len(blocks)-1] = append(blocks[len(blocks)-1], line)
			}
		}
	}
	if len(blocks) == 0 {
		t.Fatalf("%s has no sh block under ## Install", file)
	}
	return blocks
}

// firstRun follows the first-run steps of file's "## Install" section, as
// written, with the installed binaries in bin first on PATH: the lines of
// its first sh block after the install commands (the first skip of them)
// run in the clone, "peernet-host run" starting the node in the
// background; then, while the node runs, each line of the section's second
// block runs in the directory the first block left, and must succeed. The
// node then stops on SIGTERM and must exit 0. The starter file listens on
// its fixed port, 127.0.0.1:4040; when something else holds that port, the
// steps cannot work as written and the test says so and skips them.
func firstRun(t *testing.T, clone, bin, file string, skip int) {
	blocks := installBlocks(t, file)
	if len(blocks) < 2 {
		t.Fatalf("%s: ## Install has no second sh block with the commands to run beside the node", file)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:4040")
	if err != nil {
		t.Skipf("first-run steps skipped: the starter's address 127.0.0.1:4040 is taken (%v)", err)
	}
	ln.Close()
	env := append(hostEnv(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+t.TempDir(), "PEERNET_CONFIG=")

	var setup []string
	runLine := ""
	for _, line := range blocks[0][skip:] {
		if strings.HasPrefix(line, "peernet-host run") {
			runLine = line
			break
		}
		setup = append(setup, line)
	}
	if runLine == "" {
		t.Fatalf("%s: the first sh block of ## Install never runs peernet-host run", file)
	}
	sh := exec.Command("sh", "-c", "set -e\n"+strings.Join(setup, "\n")+"\npwd")
	sh.Dir, sh.Env = clone, env
	out, err := sh.Output()
	if err != nil {
		t.Fatalf("%s: %q: %v\n%s", file, setup, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := lines[len(lines)-1]
	if rel, err := filepath.Rel(clone, dir); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
		// The node's directory in the clone would make the clone's
		// next builds "modified".
		t.Cleanup(func() { os.RemoveAll(dir) })
	}

	var log peernettest.Buffer
	run := exec.Command("sh", "-c", "exec "+runLine)
	run.Dir, run.Env, run.Stdout, run.Stderr = dir, env, &log, &log
	exited, runErr := startProcess(t, run)
	cli := func(line string) (string, error) {
		c := exec.Command("sh", "-c", line)
		c.Dir, c.Env = dir, env
		out, err := c.CombinedOutput()
		return string(out), err
	}
	poll.Until(t, "the node of the first-run steps to be ready", pollTimeout, func() bool {
		out, err := cli("peernet-host status -json")
		return err == nil && strings.Contains(out, `"ready": true`)
	})
	var outs []string
	for _, line := range blocks[1] {
		out, err := cli(line)
		if err != nil {
			t.Fatalf("%s: %s: %v\n%s\nthe node's log:\n%s", file, line, err, out, log.String())
		}
		outs = append(outs, out)
	}
	// The node is named after its directory and listens on loopback.
	if all := strings.Join(outs, ""); !strings.Contains(all, "alpha") || !strings.Contains(all, "127.0.0.1:4040") || !strings.Contains(all, "pn1") {
		t.Errorf("%s: the commands beside the node printed\n%s\nwant the node alpha, listening on 127.0.0.1:4040, and its PeerID", file, all)
	}
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if err := runErr(); err != nil {
			t.Errorf("%s: %s exited with %v after SIGTERM\n%s", file, runLine, err, log.String())
		}
	case <-time.After(grace + 10*time.Second):
		t.Errorf("%s: %s did not exit after SIGTERM", file, runLine)
	}
}

// systemCommand returns what name would shadow, if anything: a shell
// builtin or keyword, or a program in the system's directories.
func systemCommand(name string) string {
	out, _ := exec.Command("bash", "-c", `type -t "$1"`, "bash", name).Output()
	if t := strings.TrimSpace(string(out)); t == "builtin" || t == "keyword" {
		return "the shell " + t + " " + name
	}
	for _, dir := range []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return filepath.Join(dir, name)
		}
	}
	return ""
}

// snapshot copies the work tree at root (tracked and untracked files that
// git does not ignore) into a new git repository with one commit, and
// returns its directory and that commit.
func snapshot(t *testing.T, root string) (dir, head string) {
	t.Helper()
	dir = t.TempDir()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		info, err := os.Lstat(src)
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		if err := copyFile(src, filepath.Join(dir, name), info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=test", "-c", "user.email=test@invalid", "-c", "commit.gpgsign=false"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", "-A")
	git("commit", "-q", "-m", "snapshot")
	return dir, git("rev-parse", "HEAD")
}

func copyFile(src, dst string, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}
