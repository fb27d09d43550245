package plugintest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// builds caches Build's work for the life of the test binary, keyed by
// working directory and package.
var builds sync.Map // string -> *build

type build struct {
	once sync.Once
	path string // in the shared cache directory
	sum  string
	err  error
}

// Build builds the plugin main package pkg (an import path, or a path
// relative to the test's working directory) with the go command on PATH, and
// returns a private copy of the binary in t.TempDir() and its hex SHA-256.
// The build itself happens once per test binary run and package; concurrent
// test binaries share a per-user cache directory. The test fails at once if
// the build fails.
func Build(t testing.TB, pkg string) (path, sha string) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	key := wd + "\x00" + pkg
	v, _ := builds.LoadOrStore(key, new(build))
	b := v.(*build)
	b.once.Do(func() { b.path, b.sum, b.err = goBuild(key, pkg) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	path = filepath.Join(t.TempDir(), "plugin")
	if err := copyFile(path, b.path); err != nil {
		t.Fatal(err)
	}
	return path, b.sum
}

func goBuild(key, pkg string) (path, sum string, err error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("peernet-plugintest-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("plugintest: %w", err)
	}
	h := sha256.Sum256([]byte(key))
	path = filepath.Join(dir, hex.EncodeToString(h[:8]))
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	out, err := exec.Command("go", "build", "-o", tmp, pkg).CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		return "", "", fmt.Errorf("plugintest: building %s: %v\n%s", pkg, err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", "", fmt.Errorf("plugintest: %w", err)
	}
	sum, err = fileSHA256(path)
	return path, sum, err
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("plugintest: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("plugintest: hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("plugintest: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return fmt.Errorf("plugintest: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("plugintest: copying binary: %w", err)
	}
	return out.Close()
}

// SocketDir returns a new private directory, removed by t.Cleanup, whose path
// is short enough for Unix sockets (t.TempDir's may not be).
func SocketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
