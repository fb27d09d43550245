package host

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestReqCtx(t *testing.T) {
	wait := func(t *testing.T, ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s never done", what)
		}
	}

	t.Run("deadline without Done", func(t *testing.T) {
		r := &reqCtx{parent: context.Background(), deadline: time.Now().Add(20 * time.Millisecond)}
		if err := r.Err(); err != nil {
			t.Fatalf("Err before the deadline: %v", err)
		}
		for end := time.Now().Add(5 * time.Second); r.Err() == nil && time.Now().Before(end); {
			time.Sleep(time.Millisecond)
		}
		if !errors.Is(r.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err after the deadline: %v", r.Err())
		}
		if r.timer != nil || r.done != nil {
			t.Fatal("a context nobody waited on armed a timer")
		}
	})
	t.Run("deadline with Done", func(t *testing.T) {
		r := &reqCtx{parent: context.Background(), deadline: time.Now().Add(20 * time.Millisecond)}
		wait(t, r.Done(), "Done")
		if !errors.Is(r.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err: %v", r.Err())
		}
	})
	t.Run("cancel", func(t *testing.T) {
		r := &reqCtx{parent: context.Background()}
		done := r.Done()
		r.cancel(context.Canceled)
		wait(t, done, "Done")
		r.cancel(context.DeadlineExceeded)
		if !errors.Is(r.Err(), context.Canceled) {
			t.Fatalf("Err: %v; the first cancel should win", r.Err())
		}
		if d := r.Done(); d != done {
			t.Fatal("Done changed")
		}
	})
	t.Run("cancel before Done", func(t *testing.T) {
		r := &reqCtx{parent: context.Background()}
		r.cancel(context.Canceled)
		wait(t, r.Done(), "Done")
	})
	t.Run("parent", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		r := &reqCtx{parent: parent}
		cancel()
		if !errors.Is(r.Err(), context.Canceled) {
			t.Fatalf("Err after the parent ended, without Done: %v", r.Err())
		}
		wait(t, r.Done(), "Done after the parent ended")
	})
	t.Run("derived context", func(t *testing.T) {
		r := &reqCtx{parent: context.Background()}
		child, cancel := context.WithCancel(r)
		defer cancel()
		r.cancel(context.Canceled)
		wait(t, child.Done(), "derived context")
	})
	t.Run("AfterFunc stop", func(t *testing.T) {
		r := &reqCtx{parent: context.Background()}
		ran := make(chan struct{})
		stop := r.AfterFunc(func() { close(ran) })
		if !stop() {
			t.Fatal("stop before cancel reported false")
		}
		if stop() || len(r.funcs) != 0 {
			t.Fatal("a stopped AfterFunc is still registered")
		}
		// cancel starts the registered funcs before it returns, so a
		// stopped one would have to be registered to run.
		r.cancel(context.Canceled)
		select {
		case <-ran:
			t.Fatal("a stopped AfterFunc ran")
		default:
		}
	})
	t.Run("Deadline", func(t *testing.T) {
		d := time.Now().Add(time.Hour)
		r := &reqCtx{parent: context.Background(), deadline: d}
		if got, ok := r.Deadline(); !ok || !got.Equal(d) {
			t.Fatalf("Deadline = %v, %t", got, ok)
		}
		r = &reqCtx{parent: context.Background()}
		if _, ok := r.Deadline(); ok {
			t.Fatal("a context without deadline reported one")
		}
	})
}
