package discovery

import (
	"context"
	"net/netip"
	"time"

	"github.com/peernet/peernet/trust"
)

// Hint sources.
const (
	SourceMDNS   = "mdns"
	SourceStatic = "static"
)

// Hint says that Peer was seen at Addr. It is only a hint: anyone on the
// link can forge one, so whoever dials Addr must still authenticate Peer in
// the handshake. A link-local IPv6 address carries the zone (interface name)
// it was seen on.
type Hint struct {
	Peer   trust.PeerID   `json:"peer"`
	Addr   netip.AddrPort `json:"addr"`   // zero when Gone
	Source string         `json:"source"` // SourceMDNS, SourceStatic, ...
	Seen   time.Time      `json:"seen"`   // when it was heard
	// Expires is when the hint lapses unless heard again (the lifetime its
	// announcement claimed); zero means never.
	Expires time.Time `json:"expires,omitzero"`
	// Gone means Peer said goodbye: every earlier hint for Peer from this
	// Source is void. Addr is zero.
	Gone bool `json:"gone,omitempty"`
}

// Source is anything that yields address hints.
type Source interface {
	// Run reports hints through found until ctx is done, then returns nil;
	// it returns an error only if it cannot work at all. It calls found
	// from one goroutine at a time, and waits for it: found should return
	// quickly. It never calls found after it has returned.
	Run(ctx context.Context, found func(Hint)) error
}

// Static is a fixed list of hints, e.g. addresses from a config file.
type Static []Hint

// Run reports each hint once, in order, then blocks until ctx is done and
// returns nil. A hint with no Source gets SourceStatic, one with no Seen
// gets the current time. Run is safe to call concurrently and repeatedly;
// it does not modify s.
func (s Static) Run(ctx context.Context, found func(Hint)) error {
	for _, h := range s {
		if ctx.Err() != nil {
			return nil
		}
		if h.Source == "" {
			h.Source = SourceStatic
		}
		if h.Seen.IsZero() {
			h.Seen = time.Now()
		}
		found(h)
	}
	<-ctx.Done()
	return nil
}
