//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestInstall runs the install commands of README.md and docs/operating.md,
// as written, in a fresh git repository holding this work tree's files (a
// clone of what is being tested), and checks what they install: exactly
// peernet-host, peernet-echo and peernet-kv, none named like a system
// command, and a peernet-host that reports the commit it was built from.
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
		})
	}
}

// installCommands returns the install commands of the first sh block of
// file's "## Install" section: its lines up to the first that runs
// peernet-host itself.
func installCommands(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	section, block := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			if section && len(cmds) > 0 {
				return cmds
			}
			section = line == "## Install"
		case section && line == "```sh":
			block = true
		case section && block && line == "```":
			return cmds
		case section && block:
			if strings.HasPrefix(line, "peernet-host") {
				return cmds
			}
			if line = strings.TrimSpace(line); line != "" {
				cmds = append(cmds, line)
			}
		}
	}
	if len(cmds) == 0 {
		t.Fatalf("%s has no install commands in an sh block under ## Install", file)
	}
	return cmds
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
