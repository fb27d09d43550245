package pluginclient

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// socketDirPrefix starts the name of each plugin's socket directory that
// go-plugin creates under LaunchConfig.SocketDir.
const socketDirPrefix = "plugin-dir"

// RemoveStaleSocketDirs removes the plugins' socket directories under dir,
// a LaunchConfig.SocketDir, that a host killed without a chance to clean up
// (kill -9, a power loss) left behind, and returns how many it removed. It
// removes only directories of this process's uid whose name go-plugin
// gives them, so call it only when no live plugin can be using dir: the
// node holds its data-dir lock, and has not launched a plugin yet. A
// missing dir is not an error.
func RemoveStaleSocketDirs(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pluginclient: removing stale socket directories: %w", err)
	}
	removed := 0
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), socketDirPrefix) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("pluginclient: removing stale socket directories: %w", err)
	}
	return removed, nil
}
