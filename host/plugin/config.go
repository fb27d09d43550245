package plugin

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/peernet/peernet/trust"
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
	// Path is the plugin binary; SHA256 its required hex digest, checked
	// before every launch.
	Path   string
	SHA256 string
	// Args and Env are the plugin's arguments and its whole environment
	// ("KEY=value"); the host's environment is not inherited.
	Args []string
	Env  []string
	// PluginConfig is handed to the plugin's Configure, JSON by convention.
	PluginConfig []byte
	// GracePeriod bounds how long a stopping or swapped-out generation may
	// take to finish its calls in flight. Zero takes DefaultGracePeriod; a
	// negative value stops a generation at once, cancelling its calls.
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

// Handle is one exposed plugin handle and its limits, as host.ExposeOptions.
type Handle struct {
	Name          string
	Allow         []trust.PeerID // nil: every trusted peer
	MaxConcurrent int            // 0: host.DefaultMaxConcurrent; negative: no cap
	Timeout       time.Duration  // 0: the caller's deadline only
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// withDefaults validates c and fills its zero fields.
func (c Config) withDefaults() (Config, error) {
	if !nameRE.MatchString(c.Name) {
		return c, fmt.Errorf("plugin: bad name %q (want 1-64 of A-Z a-z 0-9 . _ -)", c.Name)
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
	switch {
	case c.GracePeriod == 0:
		c.GracePeriod = DefaultGracePeriod
	case c.GracePeriod < 0:
		c.GracePeriod = 0 // a context that is done at once
	}
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
		slices.Equal(a.Env, b.Env) && string(a.PluginConfig) == string(b.PluginConfig)
}
