package host

import (
	"sync"
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
}

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
// does not hold up the node (events queue for it). cancel stops delivery and
// waits for a running fn to return; it is safe to call more than once.
func (n *Node) Subscribe(fn func(PeerEvent)) (cancel func()) {
	s := &subscriber{fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	n.events.mu.Lock()
	if n.events.closed {
		n.events.mu.Unlock()
		return func() {}
	}
	n.events.subs = append(n.events.subs, s)
	n.events.mu.Unlock()
	go s.run()
	var once sync.Once
	return func() {
		once.Do(func() {
			n.events.remove(s)
			s.stop()
		})
	}
}

type events struct {
	mu     sync.Mutex
	subs   []*subscriber
	closed bool
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
	mu      sync.Mutex
	queue   []PeerEvent
	stopped bool
	wake    chan struct{}
	done    chan struct{}
}

func (s *subscriber) push(e PeerEvent) {
	s.mu.Lock()
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
			s.mu.Unlock()
			s.fn(e)
		}
	}
}
