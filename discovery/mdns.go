package discovery

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/trust"
)

// Defaults for MDNSConfig.
const (
	DefaultAnnounceInterval = 60 * time.Second
	DefaultQueryInterval    = 60 * time.Second
	DefaultMaxTracked       = 256

	// maxAnnounceInterval bounds AnnounceInterval; past the 120 s our
	// SRV and address records live, peers keep them only by querying.
	maxAnnounceInterval = 30 * time.Minute
)

// MDNSConfig configures an MDNS. Zero optional fields take the documented
// defaults; NewMDNS copies the config and never writes to it.
type MDNSConfig struct {
	// Self is our PeerID: it names our announcements, and announcements
	// naming it are ignored. Required.
	Self trust.PeerID
	// Port is the TCP port our node listens on, announced in the SRV
	// record. Required, 1–65535.
	Port int
	// Interfaces names the interfaces to announce and browse on. Empty
	// means every interface that is up, running and multicast-capable. A
	// named interface that is missing or down is skipped until it is back.
	Interfaces []string
	// Filter, if set, decides which announcing peers are reported; the rest
	// are dropped and logged at debug level. It is called from Run's
	// goroutine.
	Filter func(trust.PeerID) bool
	// Logger receives diagnostics; nil means no logging.
	Logger hclog.Logger
	// Addrs, if not empty, are the only addresses we announce: those a
	// node listens on when it is bound to specific addresses rather than
	// to all. A link's addresses not in the list are left out, and on a
	// link with none of them we browse but announce nothing, so peers are
	// never sent to an address where nobody listens. Zones are ignored.
	// Empty means every address of each link.
	Addrs []netip.Addr
	// AnnounceInterval is the time between our announcements after the
	// burst that follows probing (0 s, 1 s, 3 s, 7 s). Our records carry
	// the TTLs of RFC 6762 §10 whatever it is (120 s for SRV, A and AAAA,
	// 75 min for PTR and TXT), so above 120 s peers keep our address only
	// by querying, as PeerNet nodes and avahi do. Default
	// DefaultAnnounceInterval; 1 s to 30 min.
	AnnounceInterval time.Duration
	// QueryInterval is the longest time between our queries: they start
	// about 1 s apart and double up to it. Default DefaultQueryInterval, at
	// least 1 s.
	QueryInterval time.Duration
	// MaxTracked is how many announcing peers are remembered, each with up
	// to 4 addresses; beyond it the one heard from longest ago is
	// forgotten. Default DefaultMaxTracked.
	MaxTracked int
}

// MDNS announces our node and browses for others by multicast DNS (RFC 6762)
// with DNS-SD service records (RFC 6763), on IPv4 (224.0.0.251) and IPv6
// (ff02::fb) where available. It only reports address hints; it never dials.
type MDNS struct {
	cfg     MDNSConfig
	log     hclog.Logger
	running atomic.Bool
}

// NewMDNS validates cfg and returns an MDNS ready to Run. It opens nothing.
func NewMDNS(cfg MDNSConfig) (*MDNS, error) {
	cfg.Interfaces = slices.Clone(cfg.Interfaces)
	cfg.Addrs = slices.Clone(cfg.Addrs)
	switch {
	case cfg.Self.IsZero():
		return nil, fmt.Errorf("%w: Self is not set", ErrInvalidConfig)
	case cfg.Port < 1 || cfg.Port > 65535:
		return nil, fmt.Errorf("%w: Port %d out of range 1-65535", ErrInvalidConfig, cfg.Port)
	case cfg.AnnounceInterval != 0 && (cfg.AnnounceInterval < time.Second || cfg.AnnounceInterval > maxAnnounceInterval):
		return nil, fmt.Errorf("%w: AnnounceInterval %v outside 1s-%v", ErrInvalidConfig, cfg.AnnounceInterval, maxAnnounceInterval)
	case cfg.QueryInterval != 0 && cfg.QueryInterval < time.Second:
		return nil, fmt.Errorf("%w: QueryInterval %v below 1s", ErrInvalidConfig, cfg.QueryInterval)
	case cfg.MaxTracked < 0:
		return nil, fmt.Errorf("%w: MaxTracked %d is negative", ErrInvalidConfig, cfg.MaxTracked)
	case slices.Contains(cfg.Interfaces, ""):
		return nil, fmt.Errorf("%w: empty interface name", ErrInvalidConfig)
	case slices.ContainsFunc(cfg.Addrs, func(a netip.Addr) bool { return !a.IsValid() || a.IsUnspecified() }):
		return nil, fmt.Errorf("%w: Addrs holds an invalid or unspecified address", ErrInvalidConfig)
	}
	if cfg.AnnounceInterval == 0 {
		cfg.AnnounceInterval = DefaultAnnounceInterval
	}
	if cfg.QueryInterval == 0 {
		cfg.QueryInterval = DefaultQueryInterval
	}
	if cfg.MaxTracked == 0 {
		cfg.MaxTracked = DefaultMaxTracked
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &MDNS{cfg: cfg, log: log}, nil
}

// Run implements Source. It opens the mDNS sockets (shared with other
// responders on the host through address reuse), probes for our names, then
// announces us, answers queries for our records and reports announcements of
// others through found (a goodbye as a Hint with Gone set), until ctx is
// done; then it sends a goodbye (our records with TTL 0) if it announced,
// closes its sockets, waits for its goroutines and returns nil. If another
// responder claims our names it stops announcing and answering (it cannot
// rename: the names are our PeerID) and probes again conflictRetry later;
// it browses throughout. It returns
// ErrNoSocket if it cannot listen at all, ErrRunning if this MDNS is already
// running; it may be run again after it has returned.
func (m *MDNS) Run(ctx context.Context, found func(Hint)) error {
	if !m.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer m.running.Store(false)
	if ctx.Err() != nil {
		return nil
	}
	r, err := m.open()
	if err != nil {
		return err
	}
	r.loop(ctx, found)
	return nil
}
