// Package poll implements the one way PeerNet's tests wait for something
// to happen: they poll a condition until it holds, and fail the test if it
// does not within a deadline. No test sleeps for a fixed time instead.
//
// The deadline bounds a wait that should end long before it; it is not a
// timing assertion, so it is generous enough for a loaded 2-core machine.
// The package imports nothing of PeerNet, so tests of any package,
// including wire's own, can use it.
package poll

import (
	"testing"
	"time"
)

// DefaultTimeout bounds a wait whose caller gives no bound.
const DefaultTimeout = 10 * time.Second

// Until polls cond, backing off from 1 ms to 20 ms between tries, until it
// holds, and returns how long that took. If it does not hold within limit
// (DefaultTimeout when limit is 0), the test fails with what. Call it from
// the test's goroutine only.
func Until(t testing.TB, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	if limit <= 0 {
		limit = DefaultTimeout
	}
	start := time.Now()
	deadline := start.Add(limit)
	for wait := time.Millisecond; ; wait = min(2*wait, 20*time.Millisecond) {
		if cond() {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", limit, what)
		}
		time.Sleep(wait)
	}
}
