package trust

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// The data dir is the node's local trust boundary: whoever can plant or
// replace a file in it can make the node take on another identity, trust
// another key, or (through a symbolic link) overwrite a file elsewhere with
// the node's privileges. So the directory must be the node's own and closed
// to others, and every file in it is opened without following a link,
// without blocking on a FIFO, and checked on the open descriptor, where a
// rename between the check and the use can no longer change what is used.
// The directories above the data dir are not checked.

// checkDataDir checks that dir is a directory owned by this process's
// effective uid and not writable by group or others, creating it (and its
// parents), mode 0700, if it does not exist. A symbolic link to such a
// directory is allowed: the link's target is what is checked. Refusals match
// ErrUnsafeDataDir and name dir and the fix.
func checkDataDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating data dir: %w", err)
		}
		fi, err = os.Stat(dir)
	}
	if err != nil {
		return fmt.Errorf("checking data dir: %w", err)
	}
	what := "data dir " + dir
	if target, err := os.Readlink(dir); err == nil {
		what += " (a symbolic link to " + target + ")"
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory (%s); fix: set node.data_dir to a directory", ErrUnsafeDataDir, what, fileTypeName(modeOf(fi)))
	}
	if uid, me := ownerOf(fi), os.Geteuid(); uid != me {
		return fmt.Errorf("%w: %s is owned by uid %d, but this node runs as uid %d, so that user controls the node's identity and trust list; fix: if it is this node's, chown -R %d %s; else use another data_dir",
			ErrUnsafeDataDir, what, uid, me, me, dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%w: %s has mode %04o: group or others may plant or replace files in it; fix: chmod 700 %s",
			ErrUnsafeDataDir, what, uint32(perm), dir)
	}
	return nil
}

// openDataFile opens path, a file of a data dir, with flag (os.O_RDONLY,
// os.O_RDWR|os.O_CREATE, ...; new files get mode 0600). It never follows a
// symbolic link (a link is refused with ErrUnsafeDataDir) and never blocks
// on a FIFO or device: it opens without blocking and then checks, on the open
// descriptor, that the file is a regular one (otherwise the error wraps
// notRegular, the caller's sentinel) owned by this process's effective uid
// (otherwise ErrUnsafeDataDir). A missing file gives an error matching
// fs.ErrNotExist. The errors do not name path (callers do) but give the fix.
// The caller owns the returned file.
func openDataFile(path string, flag int, notRegular error) (*os.File, fs.FileInfo, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			if target, lerr := os.Readlink(path); lerr == nil {
				return nil, nil, fmt.Errorf("%w: a symbolic link (to %s), which a node never follows in its data dir: whoever planted it could make the node read or overwrite another file; fix: find out who created it, then replace it with the file itself (rm %s)",
					ErrUnsafeDataDir, target, path)
			}
		}
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	// Check on the raw descriptor, before os.NewFile would register a FIFO
	// with the poller.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("%w: not a regular file (%s); fix: move it out of the way (mv %s %s.bad) and put the real file in its place, or let the node create a new one",
			notRegular, fileTypeName(uint32(st.Mode)), path, path)
	}
	if uid, me := int(st.Uid), os.Geteuid(); uid != me {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("%w: owned by uid %d, but this node runs as uid %d: another user may have planted it; fix: if it is this node's own file, chown %d %s; else remove it",
			ErrUnsafeDataDir, uid, me, me, path)
	}
	// A regular file never blocks; clear the flag all the same, so that
	// nothing reading it later sees EAGAIN.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, nil, &fs.PathError{Op: "fcntl", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// ownerOf returns the uid that owns the file fi describes.
func ownerOf(fi fs.FileInfo) int { return int(fi.Sys().(*syscall.Stat_t).Uid) }

// modeOf returns the stat(2) mode of the file fi describes.
func modeOf(fi fs.FileInfo) uint32 { return uint32(fi.Sys().(*syscall.Stat_t).Mode) }

// fileTypeName names the type in a stat(2) mode for error messages.
func fileTypeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device"
	}
	return fmt.Sprintf("file type %#o", mode&unix.S_IFMT)
}
