package control_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peernet/peernet/control"
	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/testing/poll"
	"github.com/peernet/peernet/trust"
)

// serveWith starts a Server for b with cfg in a fresh
// directory and returns a client of it. The server is shut down at cleanup.
func serveWith(t *testing.T, b control.Backend, cfg control.Config) (*control.Server, *control.Client) {
	t.Helper()
	srv, err := control.Listen(control.SocketPath(shortTempDir(t)), b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	c, err := control.NewClient(srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

// rawRequest writes req on a fresh connection to the server, keeping the
// connection open, and returns the answer's status and Error. The answer
// must come within a generous deadline: the server must never hang.
func rawRequest(t *testing.T, srv *control.Server, req string) (int, control.Error) {
	t.Helper()
	conn, err := net.Dial("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e control.Error
	json.Unmarshal(body, &e) // net/http's own answers are plain text
	return resp.StatusCode, e
}

// TestSlowBody sends half a body and stalls: the server answers 408 once
// the read timeout passes, rather than holding the handler for ever.
func TestSlowBody(t *testing.T) {
	f := &fake{peers: []host.PeerInfo{{ID: newID(t), Label: "beta"}}}
	const timeout = 500 * time.Millisecond
	srv, c := serveWith(t, f, control.Config{ReadTimeout: timeout})
	start := time.Now()
	status, e := rawRequest(t, srv, "POST /v1/call HTTP/1.1\r\nHost: node\r\nContent-Length: 100\r\n\r\n{\"peer\":")
	if status != http.StatusRequestTimeout || e.Code != control.CodeRequestTimeout {
		t.Fatalf("stalled body: %d %+v, want 408 %s", status, e, control.CodeRequestTimeout)
	}
	if took := time.Since(start); took < timeout {
		t.Errorf("answered after %v, before the %v timeout", took, timeout)
	}
	if len(f.calls()) != 0 {
		t.Errorf("backend was called: %v", f.calls())
	}
	// The slot is free again.
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestOversizedBody checks the body limits: a call's may hold arguments of
// the node's maximum message size and no more; other requests' bodies are
// small. Over the limit is 413, whether the length is declared or not.
func TestOversizedBody(t *testing.T) {
	const maxMsg = 64 << 10
	f := &fake{peers: []host.PeerInfo{{ID: newID(t), Label: "beta"}}}
	srv, c := serveWith(t, f, control.Config{MaxMessageSize: maxMsg})
	ctx := context.Background()

	// Arguments of the maximum size, with the longest handle, fit.
	handle := strings.Repeat("\x01", 255) // escaped to 6 bytes each in JSON
	if _, err := c.Call(ctx, control.CallRequest{Peer: "beta", Handle: handle, Args: make([]byte, maxMsg)}); err != nil {
		t.Fatalf("call with %d bytes of arguments: %v", maxMsg, err)
	}

	var ce *control.Error
	_, err := c.Call(ctx, control.CallRequest{Peer: "beta", Handle: "h", Args: make([]byte, 4*maxMsg)})
	switch {
	case errors.As(err, &ce) && ce.Code == control.CodeTooLarge:
		if !strings.Contains(ce.Message, "limit") {
			t.Errorf("413 message %q does not name the limit", ce.Message)
		}
	case err != nil && strings.Contains(err.Error(), "over the node's limit"):
		// The node closed the connection before the client read its 413.
	default:
		t.Errorf("call with %d bytes of arguments: %v, want %s", 4*maxMsg, err, control.CodeTooLarge)
	}

	for _, tc := range []struct{ name, req string }{
		{"declared length", "POST /v1/call HTTP/1.1\r\nHost: node\r\nContent-Length: 1000000000\r\n\r\n"},
		{"small route", fmt.Sprintf("POST /v1/trust HTTP/1.1\r\nHost: node\r\nContent-Length: %d\r\n\r\n%s", 100<<10, strings.Repeat(" ", 100<<10))},
		{"chunked", "POST /v1/trust HTTP/1.1\r\nHost: node\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat(fmt.Sprintf("%x\r\n%s\r\n", 32<<10, strings.Repeat(" ", 32<<10)), 3) + "0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, e := rawRequest(t, srv, tc.req)
			if status != http.StatusRequestEntityTooLarge || e.Code != control.CodeTooLarge {
				t.Errorf("%d %+v, want 413 %s", status, e, control.CodeTooLarge)
			}
		})
	}
	if got := len(f.calls()); got != 1 {
		t.Errorf("backend called %d times, want once (the call that fit): %v", got, f.calls())
	}
}

// TestConcurrencyCap fills the server's request slots with calls that
// block: one request more is answered 503 at once, and served again once a
// slot is free.
func TestConcurrencyCap(t *testing.T) {
	const max = 3
	release := make(chan struct{})
	var mu sync.Mutex
	inCall := 0
	f := &fake{peers: []host.PeerInfo{{ID: newID(t), Label: "beta"}}}
	f.call = func(ctx context.Context, _ trust.PeerID, _ string, _ []byte) ([]byte, error) {
		mu.Lock()
		inCall++
		mu.Unlock()
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	}
	_, c := serveWith(t, f, control.Config{MaxRequests: max})
	var wg sync.WaitGroup
	errs := make(chan error, max)
	for range max {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Call(context.Background(), control.CallRequest{Peer: "beta", Handle: "h"})
			errs <- err
		}()
	}
	poll.Until(t, "every slot to hold a call", 0, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return inCall == max
	})
	_, err := c.Status(context.Background())
	var ce *control.Error
	if !errors.As(err, &ce) || ce.Code != control.CodeBusy || !strings.Contains(ce.Message, "retry") {
		t.Errorf("request over the cap: %v, want %s saying to retry", err, control.CodeBusy)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("call in a slot: %v", err)
		}
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Errorf("request once slots are free: %v", err)
	}
}

// TestBadHeaders sends malformed and huge headers: each is answered at
// once with a client error and nothing reaches the backend.
func TestBadHeaders(t *testing.T) {
	f := &fake{}
	srv, c := serveWith(t, f, control.Config{})
	for _, tc := range []struct {
		name string
		req  string
		want int
	}{
		{"malformed", "GET /v1/status HTTP/1.1\r\nHost: node\r\nno colon here\r\n\r\n", http.StatusBadRequest},
		{"not HTTP", "\x00\x01\x02 hello\r\n\r\n", http.StatusBadRequest},
		{"huge", "GET /v1/status HTTP/1.1\r\nHost: node\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"huge query", "DELETE /v1/trust?peer=" + strings.Repeat("a", 64<<10) + " HTTP/1.1\r\nHost: node\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, _ := rawRequest(t, srv, tc.req); status != tc.want {
				t.Errorf("status %d, want %d", status, tc.want)
			}
		})
	}
	// The client says what net/http's plain-text answer means.
	err := c.Untrust(context.Background(), strings.Repeat("a", 64<<10))
	var ce *control.Error
	if !errors.As(err, &ce) || ce.Code != control.CodeBadRequest || !strings.Contains(ce.Message, "headers as too large (431)") {
		t.Errorf("client with a huge query: %v, want a bad_request naming the 431", err)
	}
	if got := f.calls(); len(got) != 0 {
		t.Errorf("backend was called: %v", got)
	}
}

// TestListenKeepsUmask creates files in a loop, with a permissive umask,
// while control sockets are created and closed: every file must get the
// mode the umask gives (Listen once set the process's umask to 0177 while
// it created the socket), and every socket must still be 0600.
func TestListenKeepsUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	stop := make(chan struct{})
	bad := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			path := filepath.Join(dir, fmt.Sprint(i%16))
			os.Remove(path)
			f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
			if err != nil {
				continue
			}
			fi, err := f.Stat()
			f.Close()
			if err == nil && fi.Mode().Perm() != 0o666 {
				select {
				case bad <- fmt.Sprintf("file created with mode %v under umask 0", fi.Mode().Perm()):
				default:
				}
			}
		}
	}()
	for range 50 {
		srv, err := control.Listen(control.SocketPath(shortTempDir(t)), &fake{}, control.Config{})
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(srv.Path())
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("control socket under umask 0: %v, %v; want mode 0600", fi.Mode(), err)
		}
		srv.Shutdown(context.Background())
	}
	close(stop)
	wg.Wait()
	select {
	case msg := <-bad:
		t.Error(msg)
	default:
	}
}
