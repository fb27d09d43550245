package pluginclient

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

// PinCache holds the sealed copies of plugin executables that Pin makes,
// one per SHA-256: every plugin and generation that runs the same content
// shares one copy (100 plugins started from one 19 MB binary cost 19 MB,
// not 1.9 GB), and a copy is freed when the last Pinned referring to it is
// released. The zero value is ready to use; a PinCache is safe for
// concurrent use and must not be copied after first use.
//
// Pinning is implemented on Linux only (a sealed memfd); elsewhere Pin
// fails.
type PinCache struct {
	mu     sync.Mutex
	copies map[[sha256.Size]byte]*sealedCopy
	// loading has an entry while a Pin with a configured digest reads its
	// file; other Pins of that digest wait for it rather than read the
	// same content twice. The channel is closed when the read ends.
	loading map[[sha256.Size]byte]chan struct{}
}

// Pinned is one reference to a sealed copy of a plugin executable, from
// PinCache.Pin. What Launch runs from it is exactly the content that was
// hashed: later changes to the file at its path, in place or by
// replacement, do not reach it. Release it when no launch will need it
// again; until then it may be used by any number of launches, concurrently.
type Pinned struct {
	c        *sealedCopy
	released sync.Once
}

// sealedCopy is one executable's content, read once and sealed.
type sealedCopy struct {
	cache *PinCache
	sum   [sha256.Size]byte
	// file is the sealed copy (close-on-exec): executed through
	// /proc/self/fd for a binary, inherited by the interpreter for a
	// script.
	file *os.File
	size int64
	// interp is a "#!" script's interpreter and its optional argument,
	// as the kernel splits the first line; nil for anything else.
	interp []string
	refs   int // Pinned not yet released; guarded by cache.mu
}

// Pin returns a reference to a sealed copy of the executable at path whose
// SHA-256 is wantSHA256 (hex, either case). If the cache already holds a
// copy with that digest, Pin returns it without opening path: the digest,
// not the path, names the content. Otherwise it opens path and, in one
// read, copies it into a sealed in-memory file (a memfd sealed against
// writing, growing, shrinking and further sealing) while hashing it; a
// digest other than wantSHA256 fails with ErrChecksum, naming both.
//
// An empty wantSHA256 skips the check: path is read and hashed, and the
// copy is shared with any other of the same content.
//
// A file starting with "#!" is a script: the interpreter named on its first
// line, split as the kernel splits it, is what Launch executes, with the
// sealed copy's /proc/self/fd path as the script (see LaunchConfig.Path).
// Pin fails for a "#!" line that names no interpreter or is too long for
// the kernel.
//
// Pin blocks while it reads the file (or while another Pin of the same
// digest does). The caller owns the returned Pinned and must Release it.
func (pc *PinCache) Pin(path, wantSHA256 string) (*Pinned, error) {
	var want [sha256.Size]byte
	check := wantSHA256 != ""
	if check {
		b, err := hex.DecodeString(strings.TrimSpace(wantSHA256))
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("pluginclient: SHA256 %q is not 64 hex digits", wantSHA256)
		}
		want = [sha256.Size]byte(b)
		for {
			p, wait := pc.lookup(want)
			if p != nil {
				return p, nil
			}
			if wait == nil {
				break // this Pin reads the file
			}
			<-wait // another Pin reads it; then look again
		}
		defer pc.doneLoading(want)
	}

	sc, err := readSealed(path)
	if err != nil {
		return nil, fmt.Errorf("pluginclient: pinning %s: %w", path, err)
	}
	if check && sc.sum != want {
		sc.file.Close()
		return nil, fmt.Errorf("%w: %s has sha256 %x, configured %x", ErrChecksum, path, sc.sum, want)
	}
	if sc.interp, err = parseShebang(sc.file); err != nil {
		sc.file.Close()
		return nil, fmt.Errorf("pluginclient: pinning %s: %w", path, err)
	}
	return pc.insert(sc), nil
}

// lookup returns a new reference to the copy of sum if the cache has one;
// else, if another Pin is reading that digest, a channel closed when it is
// done; else it marks sum as being read by the caller, who must call
// doneLoading.
func (pc *PinCache) lookup(sum [sha256.Size]byte) (*Pinned, <-chan struct{}) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if sc := pc.copies[sum]; sc != nil {
		sc.refs++
		return &Pinned{c: sc}, nil
	}
	if ch := pc.loading[sum]; ch != nil {
		return nil, ch
	}
	if pc.loading == nil {
		pc.loading = make(map[[sha256.Size]byte]chan struct{})
	}
	pc.loading[sum] = make(chan struct{})
	return nil, nil
}

func (pc *PinCache) doneLoading(sum [sha256.Size]byte) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	close(pc.loading[sum])
	delete(pc.loading, sum)
}

// insert adds sc to the cache and returns a reference to it, or, when a
// copy of the same content got there first, closes sc and returns a
// reference to that one.
func (pc *PinCache) insert(sc *sealedCopy) *Pinned {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if have := pc.copies[sc.sum]; have != nil {
		sc.file.Close()
		sc = have
	} else {
		if pc.copies == nil {
			pc.copies = make(map[[sha256.Size]byte]*sealedCopy)
		}
		sc.cache = pc
		pc.copies[sc.sum] = sc
	}
	sc.refs++
	return &Pinned{c: sc}
}

// Len returns the number of sealed copies the cache holds.
func (pc *PinCache) Len() int {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return len(pc.copies)
}

// SHA256 returns the hex SHA-256 of the pinned content.
func (p *Pinned) SHA256() string { return hex.EncodeToString(p.c.sum[:]) }

// Size returns the pinned content's length in bytes.
func (p *Pinned) Size() int64 { return p.c.size }

// Interpreter returns a script's interpreter and its optional argument as
// taken from its "#!" line, or nil for a binary. The caller must not
// modify the slice.
func (p *Pinned) Interpreter() []string { return p.c.interp }

// Release drops this reference; the sealed copy is freed when no
// reference to it is left. Processes already started from it are not
// affected. Release is idempotent and safe to call concurrently, but must
// not be called while a Launch using p is in progress.
func (p *Pinned) Release() {
	p.released.Do(func() {
		pc := p.c.cache
		pc.mu.Lock()
		defer pc.mu.Unlock()
		p.c.refs--
		if p.c.refs == 0 {
			delete(pc.copies, p.c.sum)
			p.c.file.Close()
		}
	})
}

// matches reports whether the pinned content has the hex digest sum.
func (p *Pinned) matches(sum string) bool {
	return strings.EqualFold(strings.TrimSpace(sum), p.SHA256())
}

// shebangBufSize is the kernel's BINPRM_BUF_SIZE: the kernel looks at no
// more than this many bytes of a "#!" line.
const shebangBufSize = 256

// Errors for "#!" lines the kernel would refuse with ENOEXEC.
var (
	errNoInterpreter  = errors.New(`"#!" line names no interpreter`)
	errShebangTooLong = fmt.Errorf(`"#!" line's interpreter path is longer than the kernel reads (%d bytes)`, shebangBufSize)
)

// parseShebang reads the start of f and, if it is a "#!" script, returns
// its interpreter and optional argument, split as the kernel's
// fs/binfmt_script.c splits them: the line ends at the first newline within
// the first shebangBufSize bytes (or at the last of them, unless that would
// cut the interpreter's path); spaces and tabs around it are dropped; the
// interpreter ends at the first space, tab or NUL, and whatever follows, up
// to a NUL, is one argument. It returns nil for anything that is not a
// script. The interpreter's path is left for execve to resolve, as the
// kernel would (a relative one against the node's working directory).
func parseShebang(f *os.File) ([]string, error) {
	buf := make([]byte, shebangBufSize) // zero past the end, as the kernel's
	n, _ := f.ReadAt(buf, 0)
	if n < 2 || buf[0] != '#' || buf[1] != '!' {
		return nil, nil
	}
	line := buf[:len(buf)-1] // the kernel's buf_end is the last byte
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		line = buf[:i]
	} else {
		rest := bytes.TrimLeft(line[2:], " \t")
		if len(rest) == 0 {
			return nil, errNoInterpreter
		}
		if indexTerminator(rest) < 0 {
			return nil, errShebangTooLong
		}
	}
	line = bytes.TrimRight(line[2:], " \t")
	rest := bytes.TrimLeft(line, " \t")
	if len(rest) == 0 || rest[0] == 0 {
		return nil, errNoInterpreter
	}
	name, arg := rest, []byte(nil)
	if i := indexTerminator(rest); i >= 0 {
		name = rest[:i]
		if rest[i] != 0 {
			arg = bytes.TrimLeft(rest[i:], " \t")
			if j := bytes.IndexByte(arg, 0); j >= 0 {
				arg = arg[:j]
			}
		}
	}
	interp := []string{string(name)}
	if len(arg) > 0 {
		interp = append(interp, string(arg))
	}
	return interp, nil
}

// indexTerminator returns the index of the first space, tab or NUL in b,
// or -1.
func indexTerminator(b []byte) int {
	return bytes.IndexFunc(b, func(r rune) bool { return r == ' ' || r == '\t' || r == 0 })
}
