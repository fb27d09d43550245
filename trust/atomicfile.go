package trust

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Atomic file replacement, split in steps so tests can stop between them to
// stand in for a crash: writeTemp leaves a complete, fsynced temporary file
// next to the target; commitTemp renames it over the target and fsyncs the
// directory so the rename itself is durable.

// tempPattern is the os.CreateTemp pattern for path's temporary files; the
// leading dot keeps them out of a casual ls.
func tempPattern(path string) string {
	return "." + filepath.Base(path) + ".tmp-*"
}

// writeTemp writes data to a new file in path's directory, mode 0600, and
// fsyncs it. It returns the temporary file's name; the caller removes it if
// it does not commit it. On error nothing is left behind.
func writeTemp(path string, data []byte) (tmp string, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), tempPattern(path)) // mode 0600
	if err != nil {
		return "", fmt.Errorf("creating temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return "", fmt.Errorf("setting mode of %s: %w", f.Name(), err)
	}
	if _, err := f.Write(data); err != nil {
		return "", fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("syncing %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("closing %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// commitTemp renames tmp over path and fsyncs the directory.
func commitTemp(tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("renaming into place: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory so that a rename, link or create in it survives
// a power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory to sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// removeStrayTemps removes temporary files for path left by a crash between
// writeTemp and commitTemp. Only call it while holding the data-dir lock: it
// would also remove another writer's file in flight.
func removeStrayTemps(path string) {
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), tempPattern(path)))
	for _, m := range matches {
		os.Remove(m)
	}
}

// readFileLimit reads f to the end, refusing files larger than limit bytes
// before reading them: it checks the size first, and reads through a
// LimitReader in case the file grows meanwhile or is not a regular file.
func readFileLimit(f *os.File, limit int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checking size: %w", err)
	}
	if fi.Size() > limit {
		return nil, errFileTooLarge{size: fi.Size(), limit: limit}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, errFileTooLarge{size: -1, limit: limit}
	}
	return data, nil
}

// errFileTooLarge is turned into the caller's own sentinel.
type errFileTooLarge struct{ size, limit int64 }

func (e errFileTooLarge) Error() string {
	if e.size < 0 {
		return fmt.Sprintf("more than %d bytes (the limit)", e.limit)
	}
	return fmt.Sprintf("%d bytes, over the %d-byte limit", e.size, e.limit)
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
