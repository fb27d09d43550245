// Package outbox implements the batching send queue used on both ends of the
// plugin call channel.
//
// A socket takes one writer at a time. Instead of a mutex around each write,
// producers Push frames onto a queue that never blocks them, and a single
// writer goroutine (Run) writes whatever has piled up with one gathered
// write. Under load many frames share one system call; an idle caller pays
// one goroutine wake-up. The queue is bounded by its producers: the calls a
// node lets run, and the replies to them.
package outbox

import (
	"runtime"
	"sync"
)

// Outbox is a queue of frames of type T. The zero value is not usable; call
// New. Push and Flushed are safe for concurrent use; Run must be called by
// one goroutine.
type Outbox[T any] struct {
	wake chan struct{}

	mu      sync.Mutex
	queue   []T
	sending bool            // Run holds frames it has not finished sending
	stopped bool            // Run has returned
	waiters []chan struct{} // closed when nothing is queued or sending
}

// New returns an empty Outbox.
func New[T any]() *Outbox[T] {
	return &Outbox[T]{wake: make(chan struct{}, 1)}
}

// Push appends f to the queue without blocking. After Run has returned, f is
// dropped.
func (o *Outbox[T]) Push(f T) {
	o.mu.Lock()
	if o.stopped {
		o.mu.Unlock()
		return
	}
	o.queue = append(o.queue, f)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Flushed returns a channel that is closed once every frame pushed so far
// has been sent, or dropped because Run returned.
func (o *Outbox[T]) Flushed() <-chan struct{} {
	ch := make(chan struct{})
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped || (!o.sending && len(o.queue) == 0) {
		close(ch)
	} else {
		o.waiters = append(o.waiters, ch)
	}
	return ch
}

// Run sends queued frames until done is closed or send fails, and returns
// send's error (nil when done closed). Each call of send gets frames whose
// sizes add up to at most limit, except that a single larger frame is sent
// alone. Frames still queued when Run returns are dropped. send owns the
// slice it is given.
func (o *Outbox[T]) Run(done <-chan struct{}, limit int, size func(T) int, send func([]T) error) (err error) {
	defer func() {
		o.mu.Lock()
		o.stopped = true
		o.queue = nil
		o.notifyLocked()
		o.mu.Unlock()
	}()
	for {
		select {
		case <-o.wake:
		case <-done:
			return nil
		}
		// Let the producers that are ready push too, so that one write
		// carries their frames: without this the writer, woken by the
		// first, writes about one frame per system call under load.
		runtime.Gosched()
		o.mu.Lock()
		queued := o.queue
		o.queue = nil
		o.sending = true
		o.mu.Unlock()
		for len(queued) > 0 {
			n, total := 0, 0
			for n < len(queued) {
				s := size(queued[n])
				if n > 0 && total+s > limit {
					break
				}
				total += s
				n++
			}
			if err := send(queued[:n:n]); err != nil {
				return err
			}
			queued = queued[n:]
		}
		o.mu.Lock()
		o.sending = false
		if len(o.queue) == 0 {
			o.notifyLocked()
		}
		o.mu.Unlock()
	}
}

func (o *Outbox[T]) notifyLocked() {
	for _, ch := range o.waiters {
		close(ch)
	}
	o.waiters = nil
}
