package pluginsdk_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/plugintest"
	"github.com/peernet/peernet/trust"
)

func handlers(m map[string]pluginsdk.HandlerFunc) map[string]pluginsdk.Handler {
	out := make(map[string]pluginsdk.Handler, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestServeConnValidates(t *testing.T) {
	ok := pluginsdk.HandlerFunc(func(context.Context, *pluginsdk.Request) ([]byte, error) { return nil, nil })
	tests := []struct {
		name string
		cfg  pluginsdk.Config
		want string
	}{
		{"no name", pluginsdk.Config{Handlers: map[string]pluginsdk.Handler{"a": ok}}, "Name is empty"},
		{"no handlers", pluginsdk.Config{Name: "p"}, "has no handlers"},
		{"nil handler", pluginsdk.Config{Name: "p", Handlers: map[string]pluginsdk.Handler{"a": nil}}, "is nil"},
		{"empty handle", pluginsdk.Config{Name: "p", Handlers: map[string]pluginsdk.Handler{"": ok}}, "invalid handle name"},
		{"bad utf-8 handle", pluginsdk.Config{Name: "p", Handlers: map[string]pluginsdk.Handler{"\xff": ok}}, "invalid handle name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer b.Close()
			err := pluginsdk.ServeConn(context.Background(), a, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestHandlerOutcomes(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	caller, _ := trust.PeerIDFromPublicKey(priv.Public().(ed25519.PublicKey))
	sent := make(chan *pluginsdk.Request, 1)
	var configured []byte
	cfg := pluginsdk.Config{
		Name: "outcomes",
		Handlers: handlers(map[string]pluginsdk.HandlerFunc{
			"ok": func(_ context.Context, r *pluginsdk.Request) ([]byte, error) {
				if r.Caller != caller || r.Kind != pluginsdk.KindCall || r.Handle != "ok" {
					return nil, errors.New("wrong request")
				}
				return []byte("fine"), nil
			},
			"error":     func(context.Context, *pluginsdk.Request) ([]byte, error) { return nil, errors.New("it broke") },
			"bad utf-8": func(context.Context, *pluginsdk.Request) ([]byte, error) { return nil, errors.New("bad \xff byte") },
			"long error": func(context.Context, *pluginsdk.Request) ([]byte, error) {
				return nil, errors.New(strings.Repeat("é", 5000))
			},
			"panic":     func(context.Context, *pluginsdk.Request) ([]byte, error) { panic("oh no") },
			"too large": func(context.Context, *pluginsdk.Request) ([]byte, error) { return make([]byte, 1025), nil },
			"deadline": func(ctx context.Context, _ *pluginsdk.Request) ([]byte, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			},
			"send": func(_ context.Context, r *pluginsdk.Request) ([]byte, error) {
				sent <- r
				return []byte("ignored"), nil
			},
			"host": func(ctx context.Context, r *pluginsdk.Request) ([]byte, error) {
				return nil, nil
			},
		}),
		Configure: func(_ context.Context, host pluginsdk.Host, config []byte) error {
			if host == nil {
				return errors.New("nil host")
			}
			configured = config
			return nil
		},
	}
	p := plugintest.Start(t, cfg, plugintest.Options{MaxMessageSize: 1024, Config: []byte(`{"x":1}`)})
	if string(configured) != `{"x":1}` {
		t.Fatalf("Configure got %q", configured)
	}

	tests := []struct {
		handle  string
		timeout time.Duration
		check   func(out []byte, err error) bool
	}{
		{"ok", 0, func(out []byte, err error) bool { return err == nil && string(out) == "fine" }},
		{"error", 0, func(_ []byte, err error) bool {
			var he *pluginsdk.Error
			return errors.As(err, &he) && he.Message == "it broke"
		}},
		{"bad utf-8", 0, func(_ []byte, err error) bool {
			var he *pluginsdk.Error
			return errors.As(err, &he) && he.Message == "bad \uFFFD byte"
		}},
		{"long error", 0, func(_ []byte, err error) bool {
			var he *pluginsdk.Error
			return errors.As(err, &he) && len(he.Message) == 4096 && strings.Trim(he.Message, "é") == ""
		}},
		{"panic", 0, func(_ []byte, err error) bool {
			return errors.Is(err, pluginsdk.ErrHandlerCrashed) && strings.Contains(err.Error(), "oh no")
		}},
		{"too large", 0, func(_ []byte, err error) bool { return errors.Is(err, pluginsdk.ErrTooLarge) }},
		{"deadline", 20 * time.Millisecond, func(_ []byte, err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
		{"missing", 0, func(_ []byte, err error) bool { return errors.Is(err, pluginsdk.ErrNoSuchHandle) }},
	}
	for _, tt := range tests {
		t.Run(tt.handle, func(t *testing.T) {
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			out, err := p.Call(ctx, caller, tt.handle, nil)
			if !tt.check(out, err) {
				t.Fatalf("got %q, %v", out, err)
			}
		})
	}

	if err := p.Send(context.Background(), caller, "send", []byte("s")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-sent:
		if r.Kind != pluginsdk.KindSend || string(r.Args) != "s" || r.Caller != caller {
			t.Fatalf("send request = %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("send never reached the handler")
	}
	// After all that, including a panic, the plugin still serves.
	if out, err := p.Call(context.Background(), caller, "ok", nil); err != nil || string(out) != "fine" {
		t.Fatalf("after the table: %q, %v", out, err)
	}
}

func TestHostWithoutCallbacks(t *testing.T) {
	var got error
	cfg := pluginsdk.Config{
		Name: "nohost",
		Handlers: handlers(map[string]pluginsdk.HandlerFunc{
			"peers": func(ctx context.Context, _ *pluginsdk.Request) ([]byte, error) { return nil, nil },
		}),
		Configure: func(ctx context.Context, host pluginsdk.Host, _ []byte) error {
			_, got = host.Peers(ctx)
			return nil
		},
	}
	plugintest.Start(t, cfg, plugintest.Options{})
	if !errors.Is(got, pluginsdk.ErrUnavailable) {
		t.Fatalf("Peers without a host: %v", got)
	}
}

const testPlugin = "github.com/peernet/peernet/pluginsdk/pluginclient/internal/testplugin"

// TestSIGTERM checks Serve's graceful stop: new calls are refused, the
// running one finishes, and the process exits with status 0.
func TestSIGTERM(t *testing.T) {
	path, sum := plugintest.Build(t, testPlugin)
	p := plugintest.StartProcess(t, path, plugintest.Options{SHA256: sum})
	c := p.Client()
	done := make(chan error, 1)
	go func() {
		_, err := p.Call(context.Background(), pluginsdk.PeerID{}, "sleep", []byte("500ms"))
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := p.Call(context.Background(), pluginsdk.PeerID{}, "active", nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sleep never started")
		}
		time.Sleep(time.Millisecond)
	}
	if err := syscall.Kill(c.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := p.Call(context.Background(), pluginsdk.PeerID{}, "echo", nil)
		if errors.Is(err, pluginsdk.ErrUnavailable) {
			break
		}
		if err != nil {
			t.Fatalf("call while draining: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("plugin kept accepting calls after SIGTERM")
		}
		time.Sleep(time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatalf("in-flight call across SIGTERM: %v", err)
	}
	select {
	case <-c.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("plugin did not exit")
	}
	if err := c.ExitErr(); err != nil {
		t.Fatalf("exit: %v, want status 0", err)
	}
}
