package outbox

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestBatches(t *testing.T) {
	tests := []struct {
		name   string
		sizes  []int
		limit  int
		expect [][]int
	}{
		{"all fit", []int{1, 2, 3}, 10, [][]int{{1, 2, 3}}},
		{"split at limit", []int{4, 4, 4}, 8, [][]int{{4, 4}, {4}}},
		{"oversized alone", []int{1, 20, 1}, 10, [][]int{{1}, {20}, {1}}},
		{"one each", []int{5, 5}, 5, [][]int{{5}, {5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := New[int]()
			for _, s := range tt.sizes {
				o.Push(s)
			}
			done := make(chan struct{})
			var got [][]int
			errStop := errors.New("stop")
			err := o.Run(done, tt.limit, func(n int) int { return n }, func(b []int) error {
				got = append(got, slices.Clone(b))
				if len(slices.Concat(got...)) == len(tt.sizes) {
					return errStop
				}
				return nil
			})
			if !errors.Is(err, errStop) {
				t.Fatalf("Run = %v", err)
			}
			if !slices.EqualFunc(got, tt.expect, slices.Equal[[]int]) {
				t.Fatalf("batches %v, want %v", got, tt.expect)
			}
		})
	}
}

func TestFlushed(t *testing.T) {
	o := New[int]()
	select {
	case <-o.Flushed():
	default:
		t.Fatal("empty outbox not flushed")
	}
	release := make(chan struct{})
	sent := make(chan int, 10)
	done := make(chan struct{})
	ran := make(chan error, 1)
	go func() {
		ran <- o.Run(done, 100, func(int) int { return 1 }, func(b []int) error {
			<-release
			for _, f := range b {
				sent <- f
			}
			return nil
		})
	}()
	o.Push(1)
	flushed := o.Flushed()
	select {
	case <-flushed:
		t.Fatal("flushed before the frame was sent")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	select {
	case <-flushed:
	case <-time.After(5 * time.Second):
		t.Fatal("not flushed after the send")
	}
	if f := <-sent; f != 1 {
		t.Fatalf("sent %d", f)
	}
	close(done)
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	o.Push(2) // dropped: Run has returned
	select {
	case <-o.Flushed():
	default:
		t.Fatal("stopped outbox not flushed")
	}
}
