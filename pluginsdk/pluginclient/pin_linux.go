package pluginclient

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

const (
	// pinSeals make the copy immutable for good: no writes (nor writable
	// shared mappings), no growing, no shrinking, and no removing seals.
	pinSeals = unix.F_SEAL_WRITE | unix.F_SEAL_GROW | unix.F_SEAL_SHRINK | unix.F_SEAL_SEAL
	// minPinFD is the lowest descriptor number a sealed copy lives at. A
	// binary is executed as /proc/self/fd/N in the forked child, after
	// os/exec has moved the child's stdio and ExtraFiles onto descriptors
	// 0, 1, 2, 3… (and briefly onto a few above them); a copy at a low
	// number could be overwritten first and the wrong file executed.
	minPinFD = 64
	// pinCopyBuf is the read size while copying: few system calls for a
	// binary of tens of MB.
	pinCopyBuf = 1 << 20
)

// readSealed reads path once into a new sealed memfd, hashing it on the
// way. The memfd is close-on-exec and executable.
func readSealed(path string) (*sealedCopy, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if fi, err := src.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	mem, err := newMemfd("peernet-plugin")
	if err != nil {
		return nil, err
	}
	// One pass: each block read is hashed and written to the copy. (The
	// hash is of the bytes written, before sealing; only this uid could
	// write to the memfd meanwhile, and it can trace this process anyway.)
	// Hashing dominates; a kernel-side copy followed by hashing the
	// sealed copy measured slower.
	h := sha256.New()
	var n int64
	buf := make([]byte, pinCopyBuf)
	for {
		k, rerr := src.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			if _, err := mem.Write(buf[:k]); err != nil {
				mem.Close()
				return nil, fmt.Errorf("copying into memory: %w", err)
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			mem.Close()
			return nil, fmt.Errorf("reading: %w", rerr)
		}
	}
	if _, err := unix.FcntlInt(mem.Fd(), unix.F_ADD_SEALS, pinSeals); err != nil {
		mem.Close()
		return nil, fmt.Errorf("sealing the copy: %w", err)
	}
	sc := &sealedCopy{file: mem, size: n}
	h.Sum(sc.sum[:0])
	return sc, nil
}

// newMemfd creates an empty memfd that can be sealed and executed, at a
// descriptor number of at least minPinFD.
func newMemfd(name string) (*os.File, error) {
	const flags = unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	// Since Linux 6.3 a memfd is executable only if created with MFD_EXEC
	// (under vm.memfd_noexec=0 the kernel only warns); older kernels
	// reject the flag, and need none.
	fd, err := unix.MemfdCreate(name, flags|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate(name, flags)
	}
	if err != nil {
		return nil, fmt.Errorf("creating a memfd: %w", err)
	}
	if high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, minPinFD); err == nil {
		unix.Close(fd)
		fd = high
	} // else (a descriptor limit below minPinFD): keep the low number
	return os.NewFile(uintptr(fd), "memfd:"+name), nil
}

// execPath is the path under which a child of this process executes or
// reads the copy at descriptor fd.
func execPath(fd uintptr) string { return "/proc/self/fd/" + strconv.Itoa(int(fd)) }
