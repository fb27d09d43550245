package channel

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/testing/poll"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

func peerID(t *testing.T, seed byte) trust.PeerID {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	id, err := trust.PeerIDFromPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := Conn(a)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := Conn(b)
	if err != nil {
		t.Fatal(err)
	}
	return ca, cb
}

// ends returns two connected channels, closed at the end of the test.
func ends(t *testing.T, a, b Config) (*Channel, *Channel) {
	t.Helper()
	ca, cb := pair(t)
	x, y := New(ca, a), New(cb, b)
	t.Cleanup(func() {
		x.Close(errors.New("test over"))
		y.Close(errors.New("test over"))
		x.Wait()
		y.Wait()
	})
	return x, y
}

// raw returns a channel and the raw other end, for writing bytes by hand.
func raw(t *testing.T, cfg Config) (*Channel, net.Conn) {
	t.Helper()
	ca, cb := pair(t)
	c := New(ca, cfg)
	t.Cleanup(func() {
		c.Close(errors.New("test over"))
		c.Wait()
		cb.Close()
	})
	return c, cb
}

func echo(_ context.Context, req *rpc.Request) ([]byte, error) {
	return append([]byte(req.Caller.Short()+" "+req.Kind.String()+" "), req.Args...), nil
}

func TestBothDirections(t *testing.T) {
	p := peerID(t, 1)
	x, y := ends(t, Config{Handler: echo}, Config{Handler: echo})
	for _, c := range []*Channel{x, y} {
		got, err := c.Call(context.Background(), p, "h", []byte("hi"))
		if err != nil {
			t.Fatal(err)
		}
		if want := p.Short() + " call hi"; string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if _, err := x.Call(context.Background(), p, "", nil); !errors.Is(err, rpc.ErrBadRequest) {
		t.Fatalf("empty handle: %v", err)
	}
	if _, err := x.Call(context.Background(), p, "h", make([]byte, wire.DefaultMaxMessageSize+1)); !errors.Is(err, rpc.ErrTooLarge) {
		t.Fatalf("large args: %v", err)
	}
}

func TestHandlerOutcomeTravels(t *testing.T) {
	x, _ := ends(t, Config{}, Config{Handler: func(ctx context.Context, req *rpc.Request) ([]byte, error) {
		switch req.Handle {
		case "forbidden":
			return nil, rpc.Errorf(rpc.StatusForbidden, "not you")
		case "local":
			return nil, rpc.ErrNotConnected
		case "panic":
			panic("boom")
		}
		return nil, errors.New("plain")
	}})
	tests := []struct {
		handle string
		is     error
		text   string
	}{
		{"forbidden", rpc.ErrForbidden, "not you"},
		{"local", rpc.ErrNotConnected, ""},
		{"panic", rpc.ErrHandlerCrashed, "boom"},
		{"plain", rpc.ErrHandlerError, "plain"},
	}
	for _, tt := range tests {
		_, err := x.Call(context.Background(), peerID(t, 1), tt.handle, nil)
		var e *rpc.Error
		if !errors.Is(err, tt.is) || !errors.As(err, &e) || e.Message != tt.text {
			t.Errorf("%s: %v, want %v with %q", tt.handle, err, tt.is, tt.text)
		}
	}
}

// TestUnservedRefusals: no handler answers unavailable; more calls at once
// than MaxIncoming are answered overloaded and the rest still run.
func TestUnservedRefusals(t *testing.T) {
	x, _ := ends(t, Config{}, Config{})
	if _, err := x.Call(context.Background(), peerID(t, 1), "h", nil); !errors.Is(err, rpc.ErrUnavailable) {
		t.Fatalf("no handler: %v", err)
	}

	release := make(chan struct{})
	var running sync.WaitGroup
	running.Add(4)
	x, _ = ends(t, Config{}, Config{MaxIncoming: 4, Handler: func(ctx context.Context, req *rpc.Request) ([]byte, error) {
		running.Done()
		<-release
		return nil, nil
	}})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := x.Call(context.Background(), peerID(t, 1), "block", nil)
			errs <- err
		}()
	}
	running.Wait()
	for range 10 {
		if _, err := x.Call(context.Background(), peerID(t, 1), "block", nil); !errors.Is(err, rpc.ErrOverloaded) {
			t.Fatalf("call beyond MaxIncoming: %v", err)
		}
	}
	close(release)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("admitted call: %v", err)
		}
	}
}

// TestDeadlineAndCancel: a passed deadline ends the handler with
// DeadlineExceeded (no cancel is sent); a cancelled caller ends it with
// Canceled.
func TestDeadlineAndCancel(t *testing.T) {
	ended := make(chan error, 1)
	x, _ := ends(t, Config{}, Config{Handler: func(ctx context.Context, req *rpc.Request) ([]byte, error) {
		<-ctx.Done()
		ended <- ctx.Err()
		return nil, ctx.Err()
	}})
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Millisecond)
		_, err := x.Call(ctx, peerID(t, 1), "wait", nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("caller: %v", err)
		}
		if err := <-ended; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("handler: %v, want its deadline", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		poll.Until(t, "call in flight", 0, func() bool { return x.InFlight() == 1 })
		cancel()
	}()
	if _, err := x.Call(ctx, peerID(t, 1), "wait", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("caller: %v", err)
	}
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler: %v, want canceled", err)
	}
}

// TestRetire: the retiring end's calls in flight are answered and the
// other end's handlers finish, sends included; then both ends close.
func TestRetire(t *testing.T) {
	release := make(chan struct{})
	sent := make(chan struct{})
	x, y := ends(t, Config{}, Config{Handler: func(ctx context.Context, req *rpc.Request) ([]byte, error) {
		<-release
		if req.Kind == rpc.KindSend {
			close(sent)
		}
		return []byte("done"), nil
	}})
	got := make(chan error, 1)
	go func() {
		out, err := x.Call(context.Background(), peerID(t, 1), "slow", nil)
		if err == nil && string(out) != "done" {
			err = errors.New("wrong result " + string(out))
		}
		got <- err
	}()
	if err := x.Send(context.Background(), peerID(t, 1), "slow", nil); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "call in flight", 0, func() bool { return x.InFlight() == 1 })
	x.Retire()
	if _, err := x.Call(context.Background(), peerID(t, 1), "slow", nil); !errors.Is(err, ErrRetired) {
		t.Fatalf("call after Retire: %v", err)
	}
	close(release)
	if err := <-got; err != nil {
		t.Fatalf("call in flight across Retire: %v", err)
	}
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("send's handler never finished")
	}
	for _, c := range []*Channel{x, y} {
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("channel not closed after retirement")
		}
		if !c.Retired() {
			t.Fatalf("ended with %v, want retired", c.Err())
		}
	}
}

// writeRaw writes messages to a raw end.
func writeRaw(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func encode(t *testing.T, m *wire.Message) []byte {
	t.Helper()
	b, err := wire.AppendMessage(nil, m, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadInput: each of these ends the channel with a protocol error, and
// a call in flight fails with the Lost error at once.
func TestBadInput(t *testing.T) {
	key := peerID(t, 1).Bytes()
	huge := binary.BigEndian.AppendUint32(nil, 1<<31)
	tests := []struct {
		name  string
		bytes func(t *testing.T) []byte
		want  string
	}{
		{"malformed", func(*testing.T) []byte { return []byte{0, 0, 0, 1, 99} }, "unknown message type"},
		{"oversized length", func(*testing.T) []byte { return huge }, "exceeds maximum"},
		{"reply never asked for", func(t *testing.T) []byte {
			return encode(t, &wire.Message{Type: wire.TypeReply, ID: 1000, Status: wire.StatusOK})
		}, "never made"},
		{"call without key", func(t *testing.T) []byte {
			return encode(t, &wire.Message{Type: wire.TypeCall, ID: 1, Handle: "h", Body: []byte("short")})
		}, "without a peer key"},
		{"unknown goaway", func(t *testing.T) []byte {
			return encode(t, &wire.Message{Type: wire.TypeGoaway, Code: wire.GoawayProtocolError, Body: []byte("bye")})
		}, "goaway protocol_error"},
		{"duplicate id", func(t *testing.T) []byte {
			m := encode(t, &wire.Message{Type: wire.TypeCall, ID: 7, Handle: "block", Body: key[:]})
			return append(m, m...)
		}, "already running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lost := errors.New("lost it")
			c, other := raw(t, Config{
				Handler: func(ctx context.Context, _ *rpc.Request) ([]byte, error) { <-ctx.Done(); return nil, ctx.Err() },
				Lost:    func(error) error { return lost },
			})
			go func() { // drain what c writes
				buf := make([]byte, 4096)
				for {
					if _, err := other.Read(buf); err != nil {
						return
					}
				}
			}()
			got := make(chan error, 1)
			go func() {
				_, err := c.Call(context.Background(), peerID(t, 2), "h", nil)
				got <- err
			}()
			poll.Until(t, "call in flight", 0, func() bool { return c.InFlight() == 1 })
			writeRaw(t, other, tt.bytes(t))
			<-c.Done()
			if err := c.Err(); err == nil || !strings.Contains(err.Error(), "protocol error") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("channel ended with %v, want a protocol error about %q", err, tt.want)
			}
			if err := <-got; !errors.Is(err, lost) {
				t.Fatalf("call in flight: %v", err)
			}
		})
	}
}

// TestStopsReading: an end that stops reading ends the channel after the
// write timeout instead of holding what is queued for ever.
func TestStopsReading(t *testing.T) {
	c, _ := raw(t, Config{WriteTimeout: 200 * time.Millisecond})
	big := make([]byte, 1<<20)
	for range 64 {
		if err := c.Send(context.Background(), peerID(t, 1), "h", big); err != nil {
			break
		}
		select {
		case <-c.Done():
		default:
			continue
		}
		break
	}
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("channel still open while the other end reads nothing")
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "stopped reading") {
		t.Fatalf("ended with %v", err)
	}
}

// FuzzChannelInput feeds whatever bytes to a channel, as a broken or
// hostile plugin could: it must answer or end, never panic or hang, and
// once the other end closes, it ends.
func FuzzChannelInput(f *testing.F) {
	key := make([]byte, AddrSize)
	call, _ := wire.AppendMessage(nil, &wire.Message{Type: wire.TypeCall, ID: 1, Handle: "h", Body: append(key, "hi"...)}, 1<<20)
	send, _ := wire.AppendMessage(nil, &wire.Message{Type: wire.TypeSend, Handle: "h", Body: key}, 1<<20)
	reply, _ := wire.AppendMessage(nil, &wire.Message{Type: wire.TypeReply, ID: 1, Status: wire.StatusOK}, 1<<20)
	goaway, _ := wire.AppendMessage(nil, &wire.Message{Type: wire.TypeGoaway, Code: wire.GoawayReplaced}, 1<<20)
	for _, seed := range [][]byte{call, send, reply, goaway, append(call, goaway...), {0, 0, 0, 1, 5}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, other := raw(t, Config{Handler: echo, MaxMessageSize: 1 << 10, WriteTimeout: 5 * time.Second})
		go func() { // read what c writes, until it closes
			buf := make([]byte, 4096)
			for {
				if _, err := other.Read(buf); err != nil {
					return
				}
			}
		}()
		if _, err := other.Write(b); err != nil {
			t.Skip("channel closed early:", err)
		}
		other.(*net.UnixConn).CloseWrite()
		select {
		case <-c.Done():
		case <-time.After(20 * time.Second):
			t.Fatal("channel still open after its other end closed")
		}
	})
}
