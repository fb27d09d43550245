package pluginclient

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/peernet/peernet/testing/poll"
)

// writeFile writes content to a new file in a fresh directory and returns
// its path and hex SHA-256.
func writeFile(t *testing.T, content string) (path, sum string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "exe")
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256([]byte(content))
	return path, hex.EncodeToString(s[:])
}

func pin(t *testing.T, pc *PinCache, path, sum string) *Pinned {
	t.Helper()
	p, err := pc.Pin(path, sum)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPinSealed checks that the copy holds exactly the file's content and
// can be neither written, nor grown, nor shrunk, nor unsealed.
func TestPinSealed(t *testing.T) {
	const content = "\x7fELF not really, but any content pins"
	path, sum := writeFile(t, content)
	var pc PinCache
	p := pin(t, &pc, path, strings.ToUpper(sum))
	defer p.Release()
	if p.SHA256() != sum || p.Size() != int64(len(content)) || p.Interpreter() != nil {
		t.Fatalf("pinned %s, %d bytes, interpreter %q; want %s, %d, none", p.SHA256(), p.Size(), p.Interpreter(), sum, len(content))
	}

	fd := p.c.file.Fd()
	if fd < minPinFD {
		t.Errorf("sealed copy at descriptor %d, want at least %d", fd, minPinFD)
	}
	seals, err := unix.FcntlInt(fd, unix.F_GET_SEALS, 0)
	if err != nil || seals != pinSeals {
		t.Fatalf("seals = %#x, %v; want %#x", seals, err, pinSeals)
	}
	got, err := os.ReadFile(execPath(fd))
	if err != nil || string(got) != content {
		t.Fatalf("copy reads %q, %v; want %q", got, err, content)
	}
	// Through a descriptor of its own, as someone who found it in /proc
	// would: the content cannot change.
	w, err := os.OpenFile(execPath(fd), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteAt([]byte("EVIL"), 0); !errors.Is(err, unix.EPERM) {
		t.Errorf("write: %v, want EPERM", err)
	}
	if err := w.Truncate(1); !errors.Is(err, unix.EPERM) {
		t.Errorf("shrink: %v, want EPERM", err)
	}
	if err := w.Truncate(1 << 20); !errors.Is(err, unix.EPERM) {
		t.Errorf("grow: %v, want EPERM", err)
	}
	if _, err := unix.FcntlInt(w.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_EXEC); !errors.Is(err, unix.EPERM) {
		t.Errorf("adding a seal: %v, want EPERM", err)
	}
	if got, _ := os.ReadFile(execPath(fd)); string(got) != content {
		t.Fatalf("copy changed to %q", got)
	}
}

func TestPinErrors(t *testing.T) {
	path, sum := writeFile(t, "content")
	other := strings.Repeat("0f", 32)
	for _, tc := range []struct {
		name, path, sum string
		wantIs          error
		wantMsg         []string
	}{
		{name: "mismatch", path: path, sum: other, wantIs: ErrChecksum, wantMsg: []string{path, sum, other}},
		{name: "malformed digest", path: path, sum: "xyz", wantMsg: []string{"64 hex digits"}},
		{name: "short digest", path: path, sum: sum[:62], wantMsg: []string{"64 hex digits"}},
		{name: "missing", path: path + ".missing", sum: sum, wantIs: fs.ErrNotExist},
		{name: "directory", path: filepath.Dir(path), wantMsg: []string{"not a regular file"}},
		{name: "no interpreter", path: writeScript(t, "#!   \nrest"), wantMsg: []string{"names no interpreter"}},
		{name: "interpreter too long", path: writeScript(t, "#!/"+strings.Repeat("x", 300)), wantMsg: []string{"longer than the kernel reads"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pc PinCache
			p, err := pc.Pin(tc.path, tc.sum)
			if err == nil {
				p.Release()
				t.Fatal("Pin succeeded")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("Pin: %v, want %v", err, tc.wantIs)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("Pin: %q does not name %q", err, m)
				}
			}
			if pc.Len() != 0 {
				t.Errorf("cache holds %d copies after a failed Pin", pc.Len())
			}
		})
	}
}

func writeScript(t *testing.T, content string) string {
	t.Helper()
	path, _ := writeFile(t, content)
	return path
}

// TestPinCacheShares checks that one copy serves every Pin of the same
// content, is found by digest without reading the file, and is freed with
// the last reference.
func TestPinCacheShares(t *testing.T) {
	path, sum := writeFile(t, "shared content")
	var pc PinCache
	a := pin(t, &pc, path, sum)
	b := pin(t, &pc, path, "") // read and hashed, then found to be a's content
	if a.c != b.c || pc.Len() != 1 {
		t.Fatalf("two Pins of one content: %d copies, same=%v", pc.Len(), a.c == b.c)
	}
	// Known by its digest, the content is not read again: the file may
	// even be gone.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	c := pin(t, &pc, path, sum)
	if c.c != a.c {
		t.Fatal("a Pin of a held digest made a new copy")
	}
	file := a.c.file

	a.Release()
	a.Release() // idempotent: must not drop b's or c's reference
	b.Release()
	if pc.Len() != 1 {
		t.Fatalf("copy freed with a reference left")
	}
	if _, err := unix.FcntlInt(file.Fd(), unix.F_GET_SEALS, 0); err != nil {
		t.Fatalf("copy closed with a reference left: %v", err)
	}
	c.Release()
	if pc.Len() != 0 {
		t.Fatalf("cache holds %d copies after the last Release", pc.Len())
	}
	if _, err := file.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("copy not closed after the last Release: %v", err)
	}
}

// TestPinConcurrent pins one digest from many goroutines at once: one copy,
// and every waiter gets it.
func TestPinConcurrent(t *testing.T) {
	path, sum := writeFile(t, strings.Repeat("concurrent ", 100000))
	var pc PinCache
	const n = 16
	pins := make([]*Pinned, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := sum
			if i%4 == 0 {
				s = "" // unchecked Pins race the checked ones
			}
			pins[i], errs[i] = pc.Pin(path, s)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, p := range pins {
		if p.c != pins[0].c {
			t.Fatal("concurrent Pins of one content made more than one copy")
		}
	}
	if pc.Len() != 1 {
		t.Fatalf("cache holds %d copies", pc.Len())
	}
	for _, p := range pins {
		p.Release()
	}
	if pc.Len() != 0 {
		t.Fatalf("cache holds %d copies after every Release", pc.Len())
	}
}

// TestPinWaiterRetries: a Pin waiting for another Pin of the same digest
// reads its own file when that one fails (its path may have had other
// content).
func TestPinWaiterRetries(t *testing.T) {
	path, sum := writeFile(t, "the right content")
	var pc PinCache
	var want [sha256.Size]byte
	b, _ := hex.DecodeString(sum)
	copy(want[:], b)
	// Stand in for a Pin of another path that is reading this digest.
	if p, wait := pc.lookup(want); p != nil || wait != nil {
		t.Fatal("empty cache: lookup found something")
	}
	type result struct {
		p   *Pinned
		err error
	}
	res := make(chan result, 1)
	go func() {
		p, err := pc.Pin(path, sum)
		res <- result{p, err}
	}()
	poll.Until(t, "the second Pin waits for the first", 0, waitingInPin)
	pc.doneLoading(want) // the stand-in fails: nothing was inserted
	r := <-res
	if r.err != nil {
		t.Fatalf("waiting Pin: %v", r.err)
	}
	defer r.p.Release()
	if r.p.SHA256() != sum || pc.Len() != 1 {
		t.Fatalf("waiting Pin got %s, cache holds %d", r.p.SHA256(), pc.Len())
	}
}

// waitingInPin reports whether a goroutine is blocked on a channel in
// PinCache.Pin.
func waitingInPin() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[chan receive") && strings.Contains(g, "(*PinCache).Pin(") {
			return true
		}
	}
	return false
}

func TestParseShebang(t *testing.T) {
	long := "/" + strings.Repeat("d", 240)
	for _, tc := range []struct {
		name, head string
		want       []string
		wantErr    bool
	}{
		{name: "binary", head: "\x7fELF\x02\x01\x01", want: nil},
		{name: "empty", head: "", want: nil},
		{name: "one byte", head: "#", want: nil},
		{name: "plain", head: "#!/bin/sh\necho hi\n", want: []string{"/bin/sh"}},
		{name: "argument", head: "#!/usr/bin/env python3\n", want: []string{"/usr/bin/env", "python3"}},
		{name: "one argument, spaces kept", head: "#! /usr/bin/awk  -f  -v x=1 \t\nBEGIN{}", want: []string{"/usr/bin/awk", "-f  -v x=1"}},
		{name: "tabs", head: "#!\t/bin/sh\t-e\n", want: []string{"/bin/sh", "-e"}},
		{name: "no newline", head: "#!/bin/sh -x", want: []string{"/bin/sh", "-x"}},
		{name: "CR is part of the line", head: "#!/bin/sh\r\n", want: []string{"/bin/sh\r"}},
		{name: "NUL ends the argument", head: "#!/bin/sh -e\x00junk\n", want: []string{"/bin/sh", "-e"}},
		{name: "NUL ends the name", head: "#!/bin/sh\x00 -e\n", want: []string{"/bin/sh"}},
		{name: "relative", head: "#!sh\n", want: []string{"sh"}},
		{name: "long line cut after the name", head: "#!" + long + " " + strings.Repeat("a", 100), want: []string{long, strings.Repeat("a", 256-2-len(long)-1-1)}},
		{name: "only spaces", head: "#!    \n", wantErr: true},
		{name: "nothing", head: "#!", wantErr: true},
		{name: "name cut", head: "#!/" + strings.Repeat("x", 300), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "s"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString(tc.head); err != nil {
				t.Fatal(err)
			}
			got, err := parseShebang(f)
			if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
				t.Fatalf("parseShebang(%q) = %q, %v; want %q, error %v", tc.head, got, err, tc.want, tc.wantErr)
			}
		})
	}
}
