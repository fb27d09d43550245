package trust

import (
	"bytes"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// otherUID returns the uid of "nobody", for files that another user owns,
// or skips the test unless it runs as root (only root can give a file
// away).
func otherUID(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create files owned by another uid (CI runs as root)")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody to own the planted files: %v", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil || uid == os.Geteuid() {
		t.Skipf("user nobody has uid %q", u.Uid)
	}
	return uid
}

// wantRefusal checks that err matches target and names path and a fix.
func wantRefusal(t *testing.T, err, target error, path string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
	for _, want := range []string{path, "fix: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// snapshot records a file's content and mode, to check that a refusal
// leaves it as it was.
func snapshot(t *testing.T, path string) func() {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	if fi.Mode().IsRegular() {
		if data, err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		t.Helper()
		now, err := os.Lstat(path)
		if err != nil {
			t.Fatalf("%s after the refusal: %v", path, err)
		}
		if now.Mode() != fi.Mode() || now.Size() != fi.Size() {
			t.Errorf("%s changed: mode %v size %d, was %v size %d", path, now.Mode(), now.Size(), fi.Mode(), fi.Size())
		}
		if fi.Mode().IsRegular() {
			if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
				t.Errorf("%s content changed", path)
			}
		}
	}
}

// TestLockThroughSymlink plants a symbolic link at the lock file's name,
// pointing at a file of the node's user: LockDir must refuse it, and leave
// the target as it was (once, it truncated it and wrote its pid there).
func TestLockThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(victim, []byte("do not truncate me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, lockFileName)
	if err := os.Symlink(victim, lock); err != nil {
		t.Fatal(err)
	}
	unchanged := snapshot(t, victim)
	l, err := LockDir(dir)
	if err == nil {
		l.Close()
	}
	wantRefusal(t, err, ErrUnsafeDataDir, lock)
	if !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("error %q does not say what is wrong", err)
	}
	unchanged()
}

// TestDataFileSymlinks checks that identity.key and trust.json are not read
// through a symbolic link, even to a valid file of the node's user.
func TestDataFileSymlinks(t *testing.T) {
	_, key := testKeyfile(t)
	elsewhere := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
		open func(dir string) error
	}{
		{KeyfileName, key, func(dir string) error { _, _, err := LoadOrCreateIdentity(dir); return err }},
		{TrustFileName, []byte(`{"version":1,"peers":[]}`), func(dir string) error {
			_, err := OpenList(filepath.Join(dir, TrustFileName))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := filepath.Join(elsewhere, tc.name)
			if err := os.WriteFile(target, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			link := filepath.Join(dir, tc.name)
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			unchanged := snapshot(t, link)
			wantRefusal(t, tc.open(dir), ErrUnsafeDataDir, link)
			unchanged()
		})
	}
}

// TestDataFilesOwnedByOthers plants identity.key and trust.json, mode
// 0600 and well-formed, that another uid owns: the node must not take on
// that identity nor trust that list.
func TestDataFilesOwnedByOthers(t *testing.T) {
	uid := otherUID(t)
	_, key := testKeyfile(t)
	for _, tc := range []struct {
		name string
		data []byte
		open func(dir string) error
	}{
		{KeyfileName, key, func(dir string) error { _, _, err := LoadOrCreateIdentity(dir); return err }},
		{TrustFileName, []byte(`{"version":1,"peers":[]}`), func(dir string) error {
			_, err := OpenList(filepath.Join(dir, TrustFileName))
			return err
		}},
		{lockFileName, nil, func(dir string) error {
			l, err := LockDir(dir)
			if err == nil {
				l.Close()
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(path, uid, uid); err != nil {
				t.Fatal(err)
			}
			unchanged := snapshot(t, path)
			err := tc.open(dir)
			wantRefusal(t, err, ErrUnsafeDataDir, path)
			if !strings.Contains(err.Error(), "uid "+strconv.Itoa(uid)) {
				t.Errorf("error %q does not name the owner", err)
			}
			unchanged()
		})
	}
}

// TestDataFileFIFO plants a FIFO at identity.key and at trust.json: opening
// them must fail at once, not wait for a writer for ever.
func TestDataFileFIFO(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target error
		open   func(dir string) error
	}{
		{KeyfileName, ErrBadKeyfile, func(dir string) error { _, _, err := LoadOrCreateIdentity(dir); return err }},
		{TrustFileName, ErrBadTrustFile, func(dir string) error {
			_, err := OpenList(filepath.Join(dir, TrustFileName))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.name)
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
			unchanged := snapshot(t, path)
			done := make(chan error, 1)
			go func() { done <- tc.open(dir) }()
			select {
			case err := <-done:
				wantRefusal(t, err, tc.target, path)
				if !strings.Contains(err.Error(), "FIFO") {
					t.Errorf("error %q does not say it is a FIFO", err)
				}
			case <-time.After(20 * time.Second):
				// Open the FIFO's other end so that the stuck open
				// returns and the goroutine ends.
				if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
					f.Close()
				}
				<-done
				t.Fatalf("opening a FIFO %s blocked", tc.name)
			}
			unchanged()
		})
	}
}

// TestTrustFileIsDirectory replaces trust.json with a directory.
func TestTrustFileIsDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, TrustFileName)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	unchanged := snapshot(t, path)
	_, err := OpenList(path)
	wantRefusal(t, err, ErrBadTrustFile, path)
	if !strings.Contains(err.Error(), "not a regular file (a directory)") {
		t.Errorf("error %q does not say what is wrong", err)
	}
	unchanged()
}

// TestTrustFileWritableByOthers checks that a trust list that others may
// change is refused.
func TestTrustFileWritableByOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), TrustFileName)
	if err := os.WriteFile(path, []byte(`{"version":1,"peers":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o622); err != nil {
		t.Fatal(err)
	}
	_, err := OpenList(path)
	wantRefusal(t, err, ErrUnsafeDataDir, path)
	if !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("error %q does not give the fix", err)
	}
}

// TestDataDirChecks checks what LockDir accepts as a data dir: a missing
// one is created 0700; one of ours, or a link to one, is taken; one that is
// not a directory, open to writers other than us, or owned by another uid
// is refused and left alone.
func TestDataDirChecks(t *testing.T) {
	lockDir := func(dir string) error {
		l, err := LockDir(dir)
		if err == nil {
			l.Close()
		}
		return err
	}

	t.Run("missing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "data")
		if err := lockDir(dir); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("created data dir: %v, %v; want mode 0700", fi.Mode(), err)
		}
	})
	t.Run("symlink to own dir", func(t *testing.T) {
		real := t.TempDir()
		link := filepath.Join(t.TempDir(), "data")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		if err := lockDir(link); err != nil {
			t.Fatalf("data dir linked to our own directory: %v", err)
		}
		if _, err := os.Stat(filepath.Join(real, lockFileName)); err != nil {
			t.Errorf("lock file not in the link's target: %v", err)
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "data")
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		unchanged := snapshot(t, path)
		wantRefusal(t, lockDir(path), ErrUnsafeDataDir, path)
		unchanged()
	})
	for _, mode := range []os.FileMode{0o770, 0o707, os.ModeSticky | 0o777} {
		t.Run("mode "+mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Chmod(dir, mode); err != nil {
				t.Fatal(err)
			}
			err := lockDir(dir)
			wantRefusal(t, err, ErrUnsafeDataDir, dir)
			if !strings.Contains(err.Error(), "chmod 700 "+dir) {
				t.Errorf("error %q does not give the fix", err)
			}
			if _, err := os.Lstat(filepath.Join(dir, lockFileName)); err == nil {
				t.Error("a lock file was created in a refused data dir")
			}
		})
	}
	t.Run("owned by another uid", func(t *testing.T) {
		uid := otherUID(t)
		dir := t.TempDir()
		if err := os.Chown(dir, uid, uid); err != nil {
			t.Fatal(err)
		}
		err := lockDir(dir)
		wantRefusal(t, err, ErrUnsafeDataDir, dir)
		if _, err := os.Lstat(filepath.Join(dir, lockFileName)); err == nil {
			t.Error("a lock file was created in a refused data dir")
		}
	})
	t.Run("symlink to another uid's dir", func(t *testing.T) {
		uid := otherUID(t)
		real := t.TempDir()
		if err := os.Chown(real, uid, uid); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(t.TempDir(), "data")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		err := lockDir(link)
		wantRefusal(t, err, ErrUnsafeDataDir, link)
		if !strings.Contains(err.Error(), "symbolic link to "+real) {
			t.Errorf("error %q does not name the link's target", err)
		}
	})
}
