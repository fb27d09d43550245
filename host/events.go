package host

import (
	"bytes"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peernet/peernet/trust"
)

// PeerEvent reports a peer coming up or going down.
type PeerEvent struct {
	Peer   trust.PeerID
	Up     bool
	Addr   string // remote address of the connection (up events)
	Via    string // up: "dialed" or "accepted"
	Source string // up: how we learned the peer's address ("connect", "config", "mdns", ...); empty if we never knew it
	Reason error  // down: why the connection ended
	Time   time.Time

	// Dropped counts the events this subscriber lost just before this
	// one because it fell more than MaxQueuedEvents behind.
	Dropped int
}

// MaxQueuedEvents bounds the events queued for one subscriber. A
// subscriber that falls further behind loses its oldest events, counted in
// the next event's Dropped, so that a slow callback can neither stall the
// node nor grow its memory.
const MaxQueuedEvents = 1024

func (e PeerEvent) String() string {
	if e.Up {
		return "up " + e.Peer.Short() + " (" + e.Via + " " + e.Addr + ")"
	}
	reason := "unknown"
	if e.Reason != nil {
		reason = e.Reason.Error()
	}
	return "down " + e.Peer.Short() + ": " + reason
}

// Subscribe calls fn with every later peer event, in order, from a
// goroutine of its own: fn never runs concurrently with itself and a slow fn
// does not hold up the node (up to MaxQueuedEvents queue for it). For each
// peer, ups and downs alternate, starting with an up, and every up is
// followed by its down by the time Close returns. cancel stops delivery and
// waits for a running fn to return, unless fn itself calls it; it is safe
// to call more than once. fn may call Close and cancel.
func (n *Node) Subscribe(fn func(PeerEvent)) (cancel func()) {
	s := &subscriber{fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	n.events.mu.Lock()
	if n.events.closed {
		n.events.mu.Unlock()
		return func() {}
	}
	n.events.subs = append(n.events.subs, s)
	n.events.mu.Unlock()
	go func() {
		id := goroutineID()
		s.gid.Store(id)
		n.events.mu.Lock()
		if n.events.running == nil {
			n.events.running = make(map[uint64]bool)
		}
		n.events.running[id] = true
		n.events.mu.Unlock()
		s.run()
		n.events.mu.Lock()
		delete(n.events.running, id)
		n.events.mu.Unlock()
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			n.events.remove(s)
			s.stop()
		})
	}
}

type events struct {
	mu      sync.Mutex
	subs    []*subscriber
	closed  bool
	running map[uint64]bool // goroutines of subscribers, running or stopping
}

// inCallback reports whether the caller runs in a subscriber's callback.
func (ev *events) inCallback() bool {
	id := goroutineID()
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.running[id]
}

func (ev *events) emit(e PeerEvent) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, s := range ev.subs {
		s.push(e)
	}
}

func (ev *events) remove(s *subscriber) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for i, o := range ev.subs {
		if o == s {
			ev.subs = append(ev.subs[:i], ev.subs[i+1:]...)
			return
		}
	}
}

// close stops every subscriber after it has seen the events queued so far.
func (ev *events) close() {
	ev.mu.Lock()
	subs := ev.subs
	ev.subs, ev.closed = nil, true
	ev.mu.Unlock()
	for _, s := range subs {
		s.stop()
	}
}

type subscriber struct {
	fn      func(PeerEvent)
	gid     atomic.Uint64 // the goroutine that runs fn
	mu      sync.Mutex
	queue   []PeerEvent
	dropped int // events dropped since the last one delivered
	stopped bool
	wake    chan struct{}
	done    chan struct{}
}

func (s *subscriber) push(e PeerEvent) {
	s.mu.Lock()
	if len(s.queue) >= MaxQueuedEvents {
		s.queue = s.queue[1:]
		s.dropped++
	}
	s.queue = append(s.queue, e)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	if s.gid.Load() == goroutineID() {
		return // fn is stopping its own subscription: it returns next
	}
	<-s.done
}

func (s *subscriber) run() {
	defer close(s.done)
	for range s.wake {
		for {
			s.mu.Lock()
			if len(s.queue) == 0 {
				stopped := s.stopped
				s.mu.Unlock()
				if stopped {
					return
				}
				break
			}
			e := s.queue[0]
			s.queue = s.queue[1:]
			e.Dropped, s.dropped = s.dropped, 0
			s.mu.Unlock()
			s.fn(e)
		}
	}
}

// goroutineID returns the id of the calling goroutine, which the runtime
// prints first in its stack trace. It lets stop tell that fn is cancelling
// its own subscription (or closing the node), when waiting for fn to
// return would wait forever. Only stop and run call it: never on a hot
// path.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	var id uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}
