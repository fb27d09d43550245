package discovery

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestStatic(t *testing.T) {
	seen := time.Unix(1_700_000_000, 0)
	s := Static{
		{Peer: testPeer(t, 1), Addr: netip.MustParseAddrPort("10.0.0.1:7000")},
		{Peer: testPeer(t, 2), Addr: netip.MustParseAddrPort("[fd77::2]:7000"), Source: "config", Seen: seen},
	}
	orig := slices.Clone(s)
	ctx, cancel := context.WithCancel(t.Context())
	var got []Hint
	errc := make(chan error, 1)
	go func() {
		errc <- s.Run(ctx, func(h Hint) {
			got = append(got, h)
			if len(got) == len(s) {
				cancel()
			}
		})
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after ctx was cancelled")
	}
	if len(got) != 2 {
		t.Fatalf("got %d hints, want 2", len(got))
	}
	if got[0].Peer != s[0].Peer || got[0].Addr != s[0].Addr || got[0].Source != SourceStatic || got[0].Seen.IsZero() {
		t.Errorf("hint 0 = %+v, want %v with source %q and a time", got[0], s[0].Addr, SourceStatic)
	}
	if got[1] != s[1] {
		t.Errorf("hint 1 = %+v, want %+v unchanged", got[1], s[1])
	}
	if !slices.Equal(s, orig) {
		t.Error("Run modified the Static slice")
	}
}

func TestStaticReturnsOnCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := 0
	if err := (Static{{Peer: testPeer(t, 1)}}).Run(ctx, func(Hint) { calls++ }); err != nil || calls != 0 {
		t.Errorf("Run on a done context = %v after %d calls, want nil after 0", err, calls)
	}
}
