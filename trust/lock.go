package trust

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// lockFileName is the lock file inside a data directory. It is never
// removed: removing a lock file while another process waits on it would let
// two holders in.
const lockFileName = "lock"

// DirLock is an exclusive lock on a data directory, held from LockDir until
// Close. It is safe for concurrent use.
type DirLock struct {
	dir string

	mu sync.Mutex
	f  *os.File // nil once closed
}

// LockDir takes the exclusive lock on data directory dir (created, mode
// 0700, if missing), so that two PeerNet nodes never share it. It does not
// block: if another node holds the lock, in this process or another, it
// fails at once with an error matching ErrDirLocked that names dir and, when
// known, the holder's process id. The lock is an flock(2) on dir/lock (mode
// 0600), released by Close or when the process exits, however it exits; it
// is per open file, so two nodes in one process exclude each other too. Like
// all flocks it is advisory, and unreliable on some network file systems.
//
// LockDir first checks the data dir itself: it must be a directory (or a
// symbolic link to one) owned by this process's uid and not writable by
// group or others, and the lock file, if present, a regular file owned by
// that uid and not a symbolic link, so that a planted link never makes the
// node write its pid into another file. A refusal matches ErrUnsafeDataDir
// and names the path and the fix; nothing is changed.
func LockDir(dir string) (*DirLock, error) {
	if err := checkDataDir(dir); err != nil {
		return nil, fmt.Errorf("locking data dir: %w", err)
	}
	path := filepath.Join(dir, lockFileName)
	f, _, err := openDataFile(path, os.O_RDWR|os.O_CREATE, ErrUnsafeDataDir)
	if err != nil {
		return nil, fmt.Errorf("locking data dir %s: lock file %s: %w", dir, path, err)
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := lockHolder(f)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s: another peernet node%s is using it", ErrDirLocked, dir, holder)
		}
		return nil, fmt.Errorf("locking data dir %s: %w", dir, err)
	}
	// Leave our pid for the error message the next node gets; best effort.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &DirLock{dir: dir, f: f}, nil
}

// Close releases the lock. It is idempotent: later calls return nil.
func (l *DirLock) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	f.Truncate(0) // best effort: forget our pid before anyone else can lock
	err := flock(f, unix.LOCK_UN)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("unlocking data dir %s: %w", l.dir, err)
	}
	return nil
}

// flock applies how to f, retrying if a signal interrupts it.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), how)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}

// lockHolder returns " (pid N)" from the lock file's contents, or "" if they
// do not hold a pid.
func lockHolder(f *os.File) string {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil || pid <= 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", pid)
}
