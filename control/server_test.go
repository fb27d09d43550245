package control_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/peernet/peernet/config"
	"github.com/peernet/peernet/control"
	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/testing/peernettest"
	"github.com/peernet/peernet/trust"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fake is a control.Backend that records what it was asked and answers
// with err, or for Call with call.
type fake struct {
	peers []host.PeerInfo
	err   error
	// call, if set, runs each Call.
	call func(ctx context.Context, id trust.PeerID, handle string, args []byte) ([]byte, error)

	mu  sync.Mutex
	got []string // one line per backend call, "Method args"
}

func (f *fake) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, fmt.Sprintf(format, args...))
}

func (f *fake) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func (f *fake) Status() control.Status {
	return control.Status{Ready: true, Name: "alpha", Plugins: f.Plugins()}
}

func (f *fake) Plugins() []control.PluginStatus {
	return []control.PluginStatus{{Name: "echo", State: "running", Handles: []string{"echo"}, Generation: 2}}
}

func (f *fake) Peers() []host.PeerInfo { return f.peers }

func (f *fake) Trust(id trust.PeerID, label string) error {
	f.record("Trust %s %s", id, label)
	return f.err
}

func (f *fake) Untrust(id trust.PeerID) error {
	f.record("Untrust %s", id)
	return f.err
}

func (f *fake) Connect(_ context.Context, id trust.PeerID, addr string) error {
	f.record("Connect %s %s", id, addr)
	return f.err
}

func (f *fake) Disconnect(id trust.PeerID) error {
	f.record("Disconnect %s", id)
	return f.err
}

func (f *fake) Call(ctx context.Context, id trust.PeerID, handle string, args []byte) ([]byte, error) {
	_, hasDeadline := ctx.Deadline()
	f.record("Call %s %s %s deadline=%v", id, handle, args, hasDeadline)
	if f.call != nil {
		return f.call(ctx, id, handle, args)
	}
	return append([]byte("re: "), args...), f.err
}

func (f *fake) Send(_ context.Context, id trust.PeerID, handle string, args []byte) error {
	f.record("Send %s %s %s", id, handle, args)
	return f.err
}

func (f *fake) Reload(context.Context) (control.ReloadResponse, error) {
	f.record("Reload")
	return control.ReloadResponse{Plugins: []string{"+kv"}}, f.err
}

func (f *fake) Revoke(plugin, handle string) error {
	f.record("Revoke %s %q", plugin, handle)
	return f.err
}

// serve is serveWith the zero Config.
func serve(t *testing.T, b control.Backend) (*control.Server, *control.Client) {
	t.Helper()
	return serveWith(t, b, control.Config{})
}

// shortTempDir is a temporary directory whose path is short enough for a
// Unix socket in it, whatever TMPDIR is.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func newID(t *testing.T) trust.PeerID {
	t.Helper()
	id, err := trust.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id.PeerID()
}

// TestRoutes drives every request through the client and checks what the
// backend was asked, with peers named by label and by PeerID.
func TestRoutes(t *testing.T) {
	beta, gamma := newID(t), newID(t)
	f := &fake{peers: []host.PeerInfo{{ID: beta, Label: "beta", Connected: true, Addr: "127.0.0.1:1", Source: "connect"}}}
	_, c := serve(t, f)
	ctx := context.Background()

	st, err := c.Status(ctx)
	if err != nil || st.Name != "alpha" || !st.Ready || len(st.Plugins) != 1 || st.Plugins[0].State != "running" {
		t.Errorf("Status = %+v, %v", st, err)
	}
	ps, err := c.Plugins(ctx)
	if err != nil || !reflect.DeepEqual(ps, f.Plugins()) {
		t.Errorf("Plugins = %+v, %v; want %+v", ps, err, f.Plugins())
	}
	peers, err := c.Peers(ctx)
	want := []control.Peer{{ID: beta.String(), Label: "beta", Connected: true, Addr: "127.0.0.1:1", Source: "connect"}}
	if err != nil || !reflect.DeepEqual(peers, want) {
		t.Errorf("Peers = %+v, %v; want %+v", peers, err, want)
	}

	for _, step := range []struct {
		do   func() error
		want string
	}{
		{func() error { return c.Trust(ctx, gamma.String(), "gamma") }, "Trust " + gamma.String() + " gamma"},
		{func() error { return c.Untrust(ctx, "beta") }, "Untrust " + beta.String()},
		{func() error { return c.Untrust(ctx, gamma.String()) }, "Untrust " + gamma.String()},
		{func() error { return c.Connect(ctx, "beta", "127.0.0.1:2") }, "Connect " + beta.String() + " 127.0.0.1:2"},
		{func() error { return c.Disconnect(ctx, "beta") }, "Disconnect " + beta.String()},
		{func() error {
			res, err := c.Call(ctx, control.CallRequest{Peer: "beta", Handle: "echo", Args: []byte("hi")})
			if err == nil && string(res) != "re: hi" {
				err = fmt.Errorf("result %q", res)
			}
			return err
		}, "Call " + beta.String() + " echo hi deadline=false"},
		{func() error {
			_, err := c.Call(ctx, control.CallRequest{Peer: "beta", Handle: "echo", Args: []byte("t"), Timeout: control.Duration(time.Hour)})
			return err
		}, "Call " + beta.String() + " echo t deadline=true"},
		{func() error { return c.Send(ctx, control.CallRequest{Peer: "beta", Handle: "log", Args: []byte("x")}) }, "Send " + beta.String() + " log x"},
		{func() error {
			r, err := c.Reload(ctx)
			if err == nil && !reflect.DeepEqual(r.Plugins, []string{"+kv"}) {
				err = fmt.Errorf("reload answered %+v", r)
			}
			return err
		}, "Reload"},
		{func() error { return c.Revoke(ctx, "echo", "") }, `Revoke echo ""`},
		{func() error { return c.Revoke(ctx, "echo", "sleep") }, `Revoke echo "sleep"`},
	} {
		before := len(f.calls())
		if err := step.do(); err != nil {
			t.Errorf("%s: %v", step.want, err)
			continue
		}
		if got := f.calls()[before:]; len(got) != 1 || got[0] != step.want {
			t.Errorf("backend got %q, want %q", got, step.want)
		}
	}
}

// TestErrors checks the code each kind of failure reaches the client
// with, and that a request refused before the backend is not passed on.
func TestErrors(t *testing.T) {
	beta := newID(t)
	peers := []host.PeerInfo{{ID: beta, Label: "beta"}}
	remote := &host.RemoteError{Peer: beta, Handle: "h", Status: rpc.StatusForbidden, Message: "not you"}
	// A typo in the middle of the PeerID, which its checksum catches.
	c := "a"
	if beta.String()[10] == 'a' {
		c = "b"
	}
	badPeer := beta.String()[:10] + c + beta.String()[11:]
	ctx := context.Background()
	tests := []struct {
		name     string
		err      error // the backend's
		do       func(c *control.Client) error
		code     string
		msg      string
		reaching bool // whether the request reaches the backend
	}{
		{"not connected", host.ErrNotConnected, func(c *control.Client) error { return c.Send(ctx, control.CallRequest{Peer: "beta", Handle: "h"}) },
			control.CodeNotConnected, "not_connected", true},
		{"remote", remote, func(c *control.Client) error {
			_, err := c.Call(ctx, control.CallRequest{Peer: "beta", Handle: "h"})
			return err
		}, control.CodeRemote, "not you", true},
		{"timeout", context.DeadlineExceeded, func(c *control.Client) error { return c.Connect(ctx, "beta", "x:1") },
			control.CodeTimeout, "deadline", true},
		{"invalid config", &config.DiagError{}, func(c *control.Client) error {
			_, err := c.Reload(ctx)
			return err
		}, control.CodeInvalidConfig, "", true},
		{"already connected", host.ErrAlreadyConnected, func(c *control.Client) error { return c.Connect(ctx, "beta", "127.0.0.1:2") },
			control.CodeAlreadyConnected, "already connected", true},
		{"bad address", host.ErrBadAddr, func(c *control.Client) error { return c.Connect(ctx, "beta", "nowhere") },
			control.CodeBadRequest, "bad address", true},
		{"disconnect when not connected", host.ErrNotConnected, func(c *control.Client) error { return c.Disconnect(ctx, "beta") },
			control.CodeNotConnected, "not_connected", true},
		{"bad handle", host.ErrBadHandle, func(c *control.Client) error { return c.Send(ctx, control.CallRequest{Peer: "beta"}) },
			control.CodeBadRequest, "bad_request", true},
		{"other", errors.New("disk on fire"), func(c *control.Client) error { return c.Trust(ctx, beta.String(), "beta") },
			control.CodeFailed, "disk on fire", true},
		{"revoke of an unknown plugin", errors.New("no plugin nope"), func(c *control.Client) error { return c.Revoke(ctx, "nope", "") },
			control.CodeBadRequest, "no plugin nope", true},
		{"unknown label", nil, func(c *control.Client) error { return c.Untrust(ctx, "nobody") },
			control.CodeUnknownPeer, `no trusted peer labelled "nobody" (and it is not a PeerID)`, false},
		{"mistyped PeerID", nil, func(c *control.Client) error { return c.Connect(ctx, badPeer, "x:1") },
			control.CodeUnknownPeer, "not a valid PeerID", false},
		{"trust of a bad PeerID", nil, func(c *control.Client) error { return c.Trust(ctx, "pn1short", "x") },
			control.CodeBadRequest, "bad peer id", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fake{peers: peers, err: tt.err}
			_, c := serve(t, f)
			err := tt.do(c)
			var ce *control.Error
			if !errors.As(err, &ce) || ce.Code != tt.code || !strings.Contains(ce.Message, tt.msg) {
				t.Errorf("error %v (%T), want code %s and a message containing %q", err, err, tt.code, tt.msg)
			}
			if reached := len(f.calls()) > 0; reached != tt.reaching {
				t.Errorf("backend called: %v (%q), want %v", reached, f.calls(), tt.reaching)
			}
		})
	}
}

// TestSocket checks the socket's mode, that a stale file is replaced, and
// that Shutdown removes it.
func TestSocket(t *testing.T) {
	path := control.SocketPath(shortTempDir(t))
	if err := os.WriteFile(path, []byte("left over"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := control.Listen(path, &fake{}, control.Config{})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket: %v, %v; want a socket with mode 0600", fi.Mode(), err)
	}
	c, err := control.NewClient(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket after Shutdown: %v, want it removed", err)
	}
	if _, err := control.NewClient(path); !errors.Is(err, control.ErrNotRunning) {
		t.Errorf("NewClient after Shutdown: %v, want ErrNotRunning", err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestClientRefusesOpenSocket(t *testing.T) {
	srv, _ := serve(t, &fake{})
	if err := os.Chmod(srv.Path(), 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := control.NewClient(srv.Path()); !errors.Is(err, control.ErrSocketPermissions) {
		t.Errorf("NewClient of a 0666 socket: %v, want ErrSocketPermissions", err)
	}
}

func TestClientNotASocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), control.SocketName)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := control.NewClient(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("NewClient of a regular file: %v, want a 'not a socket' error", err)
	}
	// A socket nobody listens on: the node crashed and left it.
	ln, err := net.Listen("unix", control.SocketPath(shortTempDir(t)))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	path = ln.Addr().String()
	ln.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := control.NewClient(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); !errors.Is(err, control.ErrNotRunning) {
		t.Errorf("Status through a dead socket: %v, want ErrNotRunning", err)
	}
}

// TestShutdownWaits checks that Shutdown lets a request in flight finish
// while its context lasts, and cancels it, waiting for its handler, once
// the context ends.
func TestShutdownWaits(t *testing.T) {
	for _, graceful := range []bool{true, false} {
		t.Run(fmt.Sprintf("graceful=%v", graceful), func(t *testing.T) {
			entered, release, returned := make(chan struct{}), make(chan struct{}), make(chan struct{})
			f := &fake{peers: []host.PeerInfo{{ID: newID(t), Label: "beta"}}}
			f.call = func(ctx context.Context, _ trust.PeerID, _ string, _ []byte) ([]byte, error) {
				defer close(returned)
				close(entered)
				select {
				case <-release:
					return []byte("finished"), nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			srv, c := serve(t, f)
			type answer struct {
				res []byte
				err error
			}
			answered := make(chan answer, 1)
			go func() {
				res, err := c.Call(context.Background(), control.CallRequest{Peer: "beta", Handle: "h"})
				answered <- answer{res, err}
			}()
			<-entered

			ctx, cancel := context.WithCancel(context.Background())
			if !graceful {
				cancel()
			}
			shut := make(chan error, 1)
			go func() { shut <- srv.Shutdown(ctx) }()
			if graceful {
				// The socket goes at once, while the call still runs.
				peernettest.Eventually(t, "the socket to be removed", func() bool {
					_, err := os.Lstat(srv.Path())
					return errors.Is(err, os.ErrNotExist)
				})
				select {
				case <-returned:
					t.Fatal("the call ended before it was released")
				default:
				}
				close(release)
			}
			err := <-shut
			cancel()
			select {
			case <-returned:
			default:
				t.Fatal("Shutdown returned before the call's handler did")
			}
			a := <-answered
			switch {
			case graceful && (err != nil || a.err != nil || string(a.res) != "finished"):
				t.Errorf("graceful: Shutdown %v; call %q, %v; want the call to finish", err, a.res, a.err)
			case !graceful && (err == nil || a.err == nil):
				t.Errorf("cut short: Shutdown %v; call %q, %v; want both to fail", err, a.res, a.err)
			}
		})
	}
}
