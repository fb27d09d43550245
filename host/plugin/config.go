package plugin

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/peernet/peernet/host"
)

// Defaults for zero fields of Config and RestartPolicy.
const (
	DefaultGracePeriod = 5 * time.Second
	DefaultMaxCrashes  = 5
	DefaultCrashWindow = time.Minute
	DefaultBackoffMin  = 200 * time.Millisecond
	DefaultBackoffMax  = 10 * time.Second
)

// Config describes one plugin: its binary, its environment and which of its
// handles are exposed to whom.
type Config struct {
	// Name identifies the plugin in the supervisor, logs and status.
	Name string
	// Path is the plugin's executable (a binary or a "#!" script); SHA256
	// its required hex digest. Apply reads and hashes the file once into a
	// sealed in-memory copy (pluginclient.PinCache.Pin) and runs that copy;
	// restarts after a crash run the same copy without reading the file
	// again, so changing the file affects nothing until a configuration
	// naming its new digest is applied.
	Path   string
	SHA256 string
	// Args and Env are the plugin's arguments and its whole environment
	// ("KEY=value"); the host's environment is not inherited.
	Args []string
	Env  []string
	// PluginConfig is handed to the plugin's Configure, JSON by convention.
	PluginConfig []byte
	// GracePeriod bounds how long a stopping or swapped-out generation may
	// take to finish its calls in flight; zero (or less) stops a generation
	// at once, cancelling its calls. The configuration file's default is
	// DefaultGracePeriod.
	GracePeriod time.Duration
	// Restart is the crash policy.
	Restart RestartPolicy
	// Handles are the plugin's handles to expose; the plugin must serve
	// each. Handles it serves but that are not listed stay closed.
	Handles []Handle
}

// RestartPolicy says how a crashed plugin is restarted.
type RestartPolicy struct {
	// More than MaxCrashes crashes within Window mark the plugin failed;
	// 0 fails it at the first crash. A zero RestartPolicy takes every
	// default (DefaultMaxCrashes, DefaultCrashWindow, ...); otherwise
	// MaxCrashes is taken as given and zero durations take their defaults.
	MaxCrashes int
	Window     time.Duration
	// BackoffMin and BackoffMax bound the jittered exponential delay
	// before each restart. Defaults DefaultBackoffMin and DefaultBackoffMax.
	BackoffMin time.Duration
	BackoffMax time.Duration
}

// Handle is one exposed plugin handle and its policy. Authorize is not
// used: a plugin handle's policy is data, so that reload can compare it.
type Handle struct {
	Name string
	host.ExposeOptions
}

// Diff names what differs from a to b, for reload reports and logs: the
// settings that differ ("binary", "args", "env", "config", "grace period",
// "restart policy") and each handle that is added ("+handle h"), removed
// ("-handle h") or whose policy changed ("handle h allow: every trusted
// peer -> no peer"). It is empty when a and b are equal.
func (a Config) Diff(b Config) []string {
	var d []string
	if a.Name != b.Name {
		d = append(d, "name")
	}
	if a.Path != b.Path || a.SHA256 != b.SHA256 {
		d = append(d, "binary")
	}
	if !slices.Equal(a.Args, b.Args) {
		d = append(d, "args")
	}
	if !slices.Equal(a.Env, b.Env) {
		d = append(d, "env")
	}
	if !bytes.Equal(a.PluginConfig, b.PluginConfig) {
		d = append(d, "config")
	}
	if a.GracePeriod != b.GracePeriod {
		d = append(d, "grace period")
	}
	if a.Restart != b.Restart {
		d = append(d, "restart policy")
	}
	for _, h := range b.Handles {
		i := slices.IndexFunc(a.Handles, func(x Handle) bool { return x.Name == h.Name })
		if i < 0 {
			d = append(d, "+handle "+h.Name)
			continue
		}
		o := a.Handles[i]
		if !o.Allow.Equal(h.Allow) {
			d = append(d, fmt.Sprintf("handle %s allow: %v -> %v", h.Name, o.Allow, h.Allow))
		}
		if o.MaxConcurrent != h.MaxConcurrent {
			d = append(d, fmt.Sprintf("handle %s max_concurrent: %d -> %d", h.Name, o.MaxConcurrent, h.MaxConcurrent))
		}
		if o.Timeout != h.Timeout {
			d = append(d, fmt.Sprintf("handle %s timeout: %v -> %v", h.Name, o.Timeout, h.Timeout))
		}
	}
	for _, h := range a.Handles {
		if !slices.ContainsFunc(b.Handles, func(x Handle) bool { return x.Name == h.Name }) {
			d = append(d, "-handle "+h.Name)
		}
	}
	return d
}

// MaxNameLen is the longest plugin name.
const MaxNameLen = 63

// CheckName reports why name cannot name a plugin, or nil: a name is 1 to
// MaxNameLen letters, digits, '-', '_' and '.', starting with a letter or
// digit, so it is safe in file names, metrics labels and logs. The error
// matches ErrBadName.
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: must be 1 to %d characters long", ErrBadName, MaxNameLen)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '-' || r == '_' || r == '.')
		if !ok {
			return fmt.Errorf("%w: must be letters, digits, '-', '_' and '.', starting with a letter or digit", ErrBadName)
		}
	}
	return nil
}

// withDefaults validates c and fills its zero fields.
func (c Config) withDefaults() (Config, error) {
	if err := CheckName(c.Name); err != nil {
		return c, fmt.Errorf("plugin %q: %w", c.Name, err)
	}
	if c.Path == "" {
		return c, fmt.Errorf("plugin %s: no binary path", c.Name)
	}
	if len(c.SHA256) != 64 {
		return c, fmt.Errorf("plugin %s: SHA256 must be 64 hex digits", c.Name)
	}
	if len(c.Handles) == 0 {
		return c, fmt.Errorf("plugin %s: exposes no handles", c.Name)
	}
	seen := map[string]bool{}
	for _, h := range c.Handles {
		if seen[h.Name] {
			return c, fmt.Errorf("plugin %s: handle %q listed twice", c.Name, h.Name)
		}
		seen[h.Name] = true
	}
	c.GracePeriod = max(c.GracePeriod, 0) // zero: a context that is done at once
	r := &c.Restart
	if *r == (RestartPolicy{}) {
		r.MaxCrashes = DefaultMaxCrashes
	}
	if r.Window == 0 {
		r.Window = DefaultCrashWindow
	}
	if r.BackoffMin == 0 {
		r.BackoffMin = DefaultBackoffMin
	}
	if r.BackoffMax == 0 {
		r.BackoffMax = DefaultBackoffMax
	}
	if r.MaxCrashes < 0 || r.Window < 0 || r.BackoffMin < 0 || r.BackoffMax < r.BackoffMin {
		return c, errors.New("plugin " + c.Name + ": negative or inverted restart policy")
	}
	return c, nil
}

// sameProcess reports whether a and b would run the same process, so a
// change between them needs no new generation.
func sameProcess(a, b Config) bool {
	return a.Path == b.Path && a.SHA256 == b.SHA256 && slices.Equal(a.Args, b.Args) &&
		slices.Equal(a.Env, b.Env) && bytes.Equal(a.PluginConfig, b.PluginConfig)
}
