package trust

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// writeKeyfile writes data to a keyfile in a fresh directory with mode perm
// and returns its path.
func writeKeyfile(tb testing.TB, data []byte, perm os.FileMode) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), KeyfileName)
	if err := os.WriteFile(path, data, perm); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // umask may have cleared bits
		tb.Fatal(err)
	}
	return path
}

func testKeyfile(tb testing.TB) (*Identity, []byte) {
	tb.Helper()
	id, err := GenerateIdentity()
	if err != nil {
		tb.Fatal(err)
	}
	return id, encodeKeyfile(id)
}

func TestLoadOrCreateIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	id, created, err := LoadOrCreateIdentity(dir)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateIdentity = %v, %v, %v; want created", id, created, err)
	}
	path := filepath.Join(dir, KeyfileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("keyfile mode %v, want 0600", fi.Mode().Perm())
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v, %v; want mode 0700", di.Mode().Perm(), err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("PEERNET IDENTITY v1\nseed: %s\npeer-id: %s\n", data[len("PEERNET IDENTITY v1\nseed: "):][:44], id.PeerID())
	if string(data) != want {
		t.Errorf("keyfile contents:\n%s\nwant the documented layout", data)
	}

	again, created, err := LoadOrCreateIdentity(dir)
	if err != nil || created || again.PeerID() != id.PeerID() {
		t.Fatalf("second LoadOrCreateIdentity = %v, %v, %v; want %v, not created", again, created, err, id)
	}
	msg := []byte("PeerNet/1 test")
	if !id.PeerID().Verify(msg, again.Sign(msg)) {
		t.Error("loaded identity's signature does not verify against the created PeerID")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
		t.Error("loading rewrote the keyfile")
	}
	assertNoTemps(t, dir)
}

func TestLoadOrCreateIdentityConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	var (
		wg      sync.WaitGroup
		ids     [n]*Identity
		created [n]bool
		errs    [n]error
	)
	for i := range n {
		wg.Go(func() { ids[i], created[i], errs[i] = LoadOrCreateIdentity(dir) })
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if created[i] {
			creators++
		}
		if ids[i].PeerID() != ids[0].PeerID() {
			t.Errorf("goroutine %d got %v, goroutine 0 got %v", i, ids[i].PeerID(), ids[0].PeerID())
		}
	}
	if creators != 1 {
		t.Errorf("%d goroutines report creating the identity, want 1", creators)
	}
	loaded, err := LoadIdentity(filepath.Join(dir, KeyfileName))
	if err != nil || loaded.PeerID() != ids[0].PeerID() {
		t.Errorf("keyfile holds %v, %v; want %v", loaded, err, ids[0].PeerID())
	}
}

func TestLoadIdentityPermissions(t *testing.T) {
	_, data := testKeyfile(t)
	tests := []struct {
		perm os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o700, true},
		{0o644, false},
		{0o640, false},
		{0o604, false},
		{0o620, false},
		{0o602, false},
		{0o666, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%04o", tt.perm), func(t *testing.T) {
			path := writeKeyfile(t, data, tt.perm)
			_, err := LoadIdentity(path)
			if tt.ok {
				if err != nil {
					t.Fatalf("LoadIdentity: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrKeyfilePermissions) {
				t.Fatalf("LoadIdentity err = %v, want ErrKeyfilePermissions", err)
			}
			if fix := "chmod 600 " + path; !strings.Contains(err.Error(), fix) {
				t.Errorf("error %q does not give the fix %q", err, fix)
			}
			// LoadOrCreate must refuse it too, and not replace the file.
			if _, _, err := LoadOrCreateIdentity(filepath.Dir(path)); !errors.Is(err, ErrKeyfilePermissions) {
				t.Errorf("LoadOrCreateIdentity err = %v, want ErrKeyfilePermissions", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
				t.Error("keyfile was changed")
			}
		})
	}
}

func TestLoadIdentityBadContent(t *testing.T) {
	id, data := testKeyfile(t)
	other, _ := testKeyfile(t)
	lines := strings.SplitAfter(string(data), "\n")
	seedLine := lines[1]
	secret := strings.TrimSpace(strings.TrimPrefix(seedLine, "seed: "))
	tests := []struct {
		name string
		data string
		want error
		text string
	}{
		{"empty", "", ErrBadKeyfile, "empty file"},
		{"truncated header", "PEERNET IDEN", ErrBadKeyfile, "truncated"},
		{"truncated after header", lines[0], ErrBadKeyfile, "truncated (1 of 3 lines)"},
		{"truncated mid seed", lines[0] + seedLine[:20], ErrBadKeyfile, "truncated"},
		{"truncated mid id", string(data[:len(data)-10]), ErrBadKeyfile, "truncated"},
		{"no final newline", string(data[:len(data)-1]), ErrBadKeyfile, "truncated"},
		{"foreign ssh key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n", ErrBadKeyfile, "not a PeerNet identity keyfile"},
		{"foreign binary", "\x00\x01\x02\x03", ErrBadKeyfile, "not a PeerNet identity keyfile"},
		{"bare seed", seedLine, ErrBadKeyfile, "not a PeerNet identity keyfile"},
		{"newer version", "PEERNET IDENTITY v2\n" + lines[1] + lines[2], ErrKeyfileVersion, "written by a newer PeerNet"},
		{"version 0", "PEERNET IDENTITY v0\n" + lines[1] + lines[2], ErrKeyfileVersion, "v0 is not a known version"},
		{"malformed version", "PEERNET IDENTITY v01\n" + lines[1] + lines[2], ErrBadKeyfile, "malformed version"},
		{"lower case magic", strings.ToLower(lines[0]) + lines[1] + lines[2], ErrBadKeyfile, "not a PeerNet identity keyfile"},
		{"extra line", string(data) + "# comment\n", ErrBadKeyfile, "line 4"},
		{"blank line", lines[0] + "\n" + lines[1] + lines[2], ErrBadKeyfile, "line 4"},
		{"crlf", strings.ReplaceAll(string(data), "\n", "\r\n"), ErrBadKeyfile, "carriage return"},
		{"seed label", lines[0] + "key: " + secret + "\n" + lines[2], ErrBadKeyfile, "line 2"},
		{"seed not base64", lines[0] + "seed: " + secret[:40] + "!!!=\n" + lines[2], ErrBadKeyfile, "not valid base64"},
		{"seed short", lines[0] + "seed: " + secret[:40] + "\n" + lines[2], ErrBadKeyfile, "seed is 30 bytes, want 32"},
		{"seed unpadded", lines[0] + "seed: " + strings.TrimRight(secret, "=") + "\n" + lines[2], ErrBadKeyfile, "not valid base64"},
		{"id label", lines[0] + lines[1] + "id: " + id.PeerID().String() + "\n", ErrBadKeyfile, "line 3"},
		{"id malformed", lines[0] + lines[1] + "peer-id: pn1abc\n", ErrBadPeerID, "line 3"},
		{"id of another key", lines[0] + lines[1] + "peer-id: " + other.PeerID().String() + "\n", ErrBadKeyfile, "does not match the seed"},
		{"too large", string(data) + strings.Repeat("x", maxKeyfileSize), ErrBadKeyfile, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeKeyfile(t, []byte(tt.data), 0o600)
			got, err := LoadIdentity(path)
			if !errors.Is(err, tt.want) {
				t.Fatalf("LoadIdentity = %v, %v; want %v", got, err, tt.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.text) {
				t.Errorf("error %q does not contain %q", msg, tt.text)
			}
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file", msg)
			}
			if strings.Contains(msg, secret[:16]) {
				t.Errorf("error %q leaks the seed", msg)
			}
		})
	}
}

func TestLoadIdentityNotRegular(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyfileName)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(path); !errors.Is(err, ErrBadKeyfile) {
		t.Errorf("directory: err = %v, want ErrBadKeyfile", err)
	}
	if _, err := LoadIdentity(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: err = %v, want fs.ErrNotExist", err)
	}
}

func TestIdentityDoesNotPrintKey(t *testing.T) {
	id, data := testKeyfile(t)
	secret := strings.TrimPrefix(strings.SplitAfter(string(data), "\n")[1], "seed: ")[:16]
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, id)
		if !strings.Contains(out, id.PeerID().String()) || strings.Contains(out, secret) {
			t.Errorf("Sprintf(%q) = %q", verb, out)
		}
	}
}

func TestKeyfileRoundTrip(t *testing.T) {
	for range 10 {
		id, data := testKeyfile(t)
		back, err := parseKeyfile(data)
		if err != nil {
			t.Fatalf("parseKeyfile(encodeKeyfile): %v", err)
		}
		if back.PeerID() != id.PeerID() || !bytes.Equal(back.priv, id.priv) {
			t.Fatal("round trip changed the key")
		}
	}
}

func assertNoTemps(tb testing.TB, dir string) {
	tb.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(matches) > 0 {
		tb.Errorf("temporary files left behind: %v", matches)
	}
}

func FuzzKeyfile(f *testing.F) {
	_, data := testKeyfile(f)
	lines := strings.SplitAfter(string(data), "\n")
	for _, s := range []string{string(data), lines[0], "", "PEERNET IDENTITY v2\n" + lines[1] + lines[2],
		string(data[:len(data)-1]), strings.ReplaceAll(string(data), "\n", "\r\n"), "-----BEGIN OPENSSH PRIVATE KEY-----\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := parseKeyfile(data)
		if err != nil {
			if id != nil || !(errors.Is(err, ErrBadKeyfile) || errors.Is(err, ErrKeyfileVersion)) {
				t.Fatalf("parseKeyfile = %v, %v", id, err)
			}
			return
		}
		again, err := parseKeyfile(encodeKeyfile(id))
		if err != nil || again.PeerID() != id.PeerID() {
			t.Fatalf("re-encoding %v: %v, %v", id, again, err)
		}
		msg := []byte("fuzz")
		if !id.PeerID().Verify(msg, id.Sign(msg)) {
			t.Fatal("loaded key does not sign for its PeerID")
		}
	})
}
