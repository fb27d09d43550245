package host

import (
	"testing"
	"time"
)

// A subscriber that falls more than MaxQueuedEvents behind loses its
// oldest events, and the next event it sees counts them: every event
// emitted is either delivered, in order, or counted as dropped, and the
// node never waits for the slow callback.
func TestSubscriberDropsOldestAndCounts(t *testing.T) {
	n := &Node{}
	gate := make(chan struct{})
	got := make(chan PeerEvent, 2*MaxQueuedEvents)
	cancel := n.Subscribe(func(e PeerEvent) {
		<-gate
		got <- e
	})
	defer cancel()

	// Event 0 is taken by the callback, which blocks on gate; a callback
	// that has not started yet leaves it queued, and then it is dropped
	// instead of a later one. Either way, every number is accounted for.
	const total = MaxQueuedEvents + 500
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for i := range total {
			n.events.emit(PeerEvent{Time: time.Unix(int64(i), 0)})
		}
	}()
	select {
	case <-emitted:
	case <-time.After(10 * time.Second):
		t.Fatal("emit waited for a blocked subscriber")
	}
	close(gate)

	next, dropped := int64(0), 0
	for next < total {
		select {
		case e := <-got:
			i := e.Time.Unix()
			if i != next+int64(e.Dropped) {
				t.Fatalf("event %d arrived with %d dropped after %d; want event %d", i, e.Dropped, next-1, next+int64(e.Dropped))
			}
			dropped += e.Dropped
			next = i + 1
		case <-time.After(10 * time.Second):
			t.Fatalf("delivery stopped at event %d with %d dropped, of %d", next, dropped, total)
		}
	}
	if dropped == 0 || total-dropped > MaxQueuedEvents+1 {
		t.Fatalf("%d of %d events dropped; want all but at most MaxQueuedEvents+1 (%d)", dropped, total, MaxQueuedEvents+1)
	}
}
