package host

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/discovery"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// Defaults for the zero fields of a Config.
const (
	DefaultListenAddr         = "127.0.0.1:0"
	DefaultCallTimeout        = 5 * time.Second // the original library's call timeout
	DefaultHandshakeTimeout   = wire.DefaultHandshakeTimeout
	DefaultMaxHandshakes      = 64
	DefaultMaxInflightPerPeer = 1024
	DefaultMaxConcurrent      = 256
	DefaultPingInterval       = 10 * time.Second
	DefaultReconnectMin       = 100 * time.Millisecond
	DefaultReconnectMax       = 30 * time.Second
	DefaultMaxWriteQueue      = 8 << 20

	DefaultMaxPeerMemory          = 32 << 20
	DefaultWriteTimeout           = 15 * time.Second
	DefaultMaxHandshakesPerSource = 16
	DefaultMaxConnsPerPeer        = 4
)

// Config configures a Node. Only DataDir is required; every other zero
// field takes the default named on it. Start copies the Config and never
// writes to the caller's value.
type Config struct {
	// Name labels the node's log lines; it may be empty. It is not an
	// identity (the key is) and need not be unique: two nodes in one
	// process are kept apart by their data dirs, which they lock.
	Name string

	// DataDir holds the identity keyfile, the trust list and the lock file.
	// It is created (mode 0700) if missing. Two nodes may not share it.
	DataDir string

	// ListenAddr is the TCP address to listen on; port 0 picks a free port
	// (see Node.Port). Default DefaultListenAddr, loopback only.
	ListenAddr string

	// Logger receives the node's logs, named after Name. Default: discard.
	Logger hclog.Logger

	// CallTimeout applies to Call when its context has no deadline.
	// Default DefaultCallTimeout.
	CallTimeout time.Duration

	// HandshakeTimeout bounds a connection's handshake, inbound or outbound,
	// from TCP accept or connect to both sides authenticated.
	// Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// MaxHandshakes caps inbound handshakes in progress at once, and
	// MaxHandshakesPerSource those from one source (an IPv4 address, or an
	// IPv6 /64). A socket over either cap takes the place of the oldest
	// pending handshake that has not yet received the dialer's first
	// message (from the same source, or else from the source with the most
	// pending), which is closed; only if every pending handshake has made
	// that progress is the new socket closed instead. Sockets that stall
	// before speaking therefore cannot lock others out. Defaults
	// DefaultMaxHandshakes and DefaultMaxHandshakesPerSource.
	MaxHandshakes          int
	MaxHandshakesPerSource int

	// MaxConnsPerPeer caps the connections one authenticated peer may have
	// at once (the one in use and those being retired); a handshake past it
	// is answered with the "busy" verdict. Default DefaultMaxConnsPerPeer.
	MaxConnsPerPeer int

	// MaxMessageSize caps one message (args or result plus a few header
	// bytes) that this node accepts; it is announced to each peer in the
	// handshake, and what this node sends is capped by the peer's own
	// limit instead (a call above it fails with ErrTooLarge).
	// Default wire.DefaultMaxMessageSize; at most wire.MaxMaxMessageSize.
	MaxMessageSize int

	// CipherSuite is the suite this node offers when it dials; as the
	// responder it takes whichever the dialer offers. Zero means
	// wire.DefaultSuite(): AES-256-GCM on a CPU with hardware AES, else
	// ChaChaPoly.
	CipherSuite wire.Suite

	// MaxInflightPerPeer caps the inbound calls and sends one peer may have
	// running at once, across all of its connections; excess calls are
	// answered "overloaded". Default DefaultMaxInflightPerPeer.
	MaxInflightPerPeer int

	// MaxPeerMemory is the per-peer memory budget: the bytes one peer can
	// make the node hold, counted across all of its connections, as the
	// args of its requests still running plus the replies queued for it
	// and not yet written. While the budget is exceeded the node stops
	// reading that peer's connections (TCP backpressure) until replies
	// drain; a reply that would not fit is replaced at once by an
	// "overloaded" reply, so a handler never waits to queue one. A
	// caller that keeps more calls in flight than the budget holds
	// results for sees "overloaded". Raised to 2×MaxMessageSize if less.
	// Default DefaultMaxPeerMemory.
	MaxPeerMemory int

	// WriteTimeout is how long one write to a peer may make no progress.
	// A peer that does not read for that long is dropped, with a reason
	// matching ErrConnLost that says so in its down event, within
	// WriteTimeout + PingInterval/4. Default DefaultWriteTimeout.
	WriteTimeout time.Duration

	// MaxWriteQueue caps the bytes of this node's own calls and sends
	// queued for one connection before senders wait for the network.
	// Default DefaultMaxWriteQueue.
	MaxWriteQueue int

	// PingInterval paces liveness: a connection that has received nothing
	// for half of it is pinged, and one that has received nothing for 3/2
	// of it is closed as dead, so a frozen link is noticed within 7/4
	// intervals (two at most). Default DefaultPingInterval.
	PingInterval time.Duration

	// ReconnectMin and ReconnectMax bound the jittered exponential backoff
	// with which peers whose address is known are redialled after their
	// connection drops. Defaults DefaultReconnectMin and DefaultReconnectMax.
	ReconnectMin time.Duration
	ReconnectMax time.Duration

	// MDNS, if set, turns on multicast DNS discovery: the node announces
	// itself on the local network and dials trusted peers it hears of.
	// Off by default.
	MDNS *MDNSConfig

	// Discovery lists further sources of address hints (a static list, a
	// rendezvous service). Like mDNS hints, they are used only for trusted
	// peers, and the handshake still proves the key.
	Discovery []discovery.Source

	// Observer, if set, is told of every inbound request served and every
	// handshake, for metrics.
	Observer Observer

	// Peers are trusted (and, with an address, dialled) as Start begins,
	// before discovery and the listener's first connection, as if by Trust
	// and SetAddr. A program that declares its peers in a file passes them
	// here, so that no announcement or connection from them arrives before
	// they are trusted.
	Peers []Peer

	// HoldRequests makes the node answer inbound calls and sends
	// "unavailable" until Ready is called, so that a program can finish
	// exposing its handlers (starting its plugins, say) before peers see
	// "no such handle" for them.
	HoldRequests bool
}

// Peer is a peer declared in a Config.
type Peer struct {
	ID    trust.PeerID
	Label string
	Addr  string // host:port to dial; empty if unknown
}

// Observer receives events for metrics. Its methods are called on the
// node's hot paths, concurrently: they must be fast and must not block.
type Observer interface {
	// Served reports an inbound call or send and its outcome; d is the
	// handler's run time (zero for requests refused before running).
	// handle is "" when no such handle is exposed, so that callers cannot
	// grow the set of values without bound.
	Served(handle string, kind Kind, status wire.Status, d time.Duration)
	// Handshake reports a finished handshake; err is nil on success.
	Handshake(inbound bool, err error)
	// HandshakeRefused reports an inbound socket turned away by admission
	// control, for one of the Refused* reasons.
	HandshakeRefused(reason string)
}

// The reasons given to Observer.HandshakeRefused.
const (
	// RefusedEvicted: a pending handshake that had not received the
	// dialer's first message was closed to make room for a newer socket.
	RefusedEvicted = "evicted"
	// RefusedOverLimit: a new socket was closed at once because every
	// pending handshake in its way had made progress.
	RefusedOverLimit = "over_limit"
	// RefusedBusy: an authenticated peer already had MaxConnsPerPeer
	// connections and was sent the "busy" verdict.
	RefusedBusy = "busy"
)

// nopObserver is the Observer of a node configured without one.
type nopObserver struct{}

func (nopObserver) Served(string, Kind, wire.Status, time.Duration) {}
func (nopObserver) Handshake(bool, error)                           {}
func (nopObserver) HandshakeRefused(string)                         {}

// MDNSConfig configures mDNS discovery; the zero value announces and
// browses on every multicast-capable interface.
type MDNSConfig struct {
	// Interfaces limits discovery to these interface names.
	Interfaces []string
	// AnnounceInterval and QueryInterval override discovery's defaults.
	AnnounceInterval time.Duration
	QueryInterval    time.Duration
}

// withDefaults returns a copy of c with defaults filled in, or an error
// naming the first invalid field.
func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		return c, errors.New("host: Config.DataDir is required")
	}
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return c, fmt.Errorf("host: Config.ListenAddr %q: %w", c.ListenAddr, err)
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	setDuration(&c.CallTimeout, DefaultCallTimeout)
	setDuration(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDuration(&c.PingInterval, DefaultPingInterval)
	setDuration(&c.WriteTimeout, DefaultWriteTimeout)
	setDuration(&c.ReconnectMin, DefaultReconnectMin)
	setDuration(&c.ReconnectMax, DefaultReconnectMax)
	setInt(&c.MaxHandshakes, DefaultMaxHandshakes)
	setInt(&c.MaxMessageSize, wire.DefaultMaxMessageSize)
	setInt(&c.MaxInflightPerPeer, DefaultMaxInflightPerPeer)
	setInt(&c.MaxWriteQueue, DefaultMaxWriteQueue)
	setInt(&c.MaxPeerMemory, DefaultMaxPeerMemory)
	setInt(&c.MaxHandshakesPerSource, DefaultMaxHandshakesPerSource)
	setInt(&c.MaxConnsPerPeer, DefaultMaxConnsPerPeer)
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"CallTimeout", c.CallTimeout}, {"HandshakeTimeout", c.HandshakeTimeout},
		{"PingInterval", c.PingInterval}, {"WriteTimeout", c.WriteTimeout}, {"ReconnectMin", c.ReconnectMin}, {"ReconnectMax", c.ReconnectMax},
	} {
		if f.v < 0 {
			return c, fmt.Errorf("host: Config.%s is negative (%v)", f.name, f.v)
		}
	}
	if c.ReconnectMax < c.ReconnectMin {
		return c, fmt.Errorf("host: Config.ReconnectMax (%v) is below ReconnectMin (%v)", c.ReconnectMax, c.ReconnectMin)
	}
	if c.MaxMessageSize < MinMessageSize {
		return c, fmt.Errorf("host: Config.MaxMessageSize %d is below the minimum %d", c.MaxMessageSize, MinMessageSize)
	}
	if c.MaxHandshakes < 0 || c.MaxInflightPerPeer < 0 || c.MaxWriteQueue < 0 ||
		c.MaxPeerMemory < 0 || c.MaxHandshakesPerSource < 0 || c.MaxConnsPerPeer < 0 {
		return c, errors.New("host: Config limits must not be negative")
	}
	if c.MaxWriteQueue < c.MaxMessageSize {
		c.MaxWriteQueue = c.MaxMessageSize
	}
	// Room for one request and one reply of the largest size, so that a
	// peer within its budget can always make progress.
	if c.MaxPeerMemory < 2*c.MaxMessageSize {
		c.MaxPeerMemory = 2 * c.MaxMessageSize
	}
	return c, nil
}

// MinMessageSize is the smallest Config.MaxMessageSize: it leaves room for
// a call with the longest handle and a little data; anything smaller could
// not carry an ordinary call.
const MinMessageSize = 1024

func setDuration(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func setInt(i *int, def int) {
	if *i == 0 {
		*i = def
	}
}
