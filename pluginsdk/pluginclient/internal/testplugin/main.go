// Command testplugin is the plugin pluginclient's tests launch: small handles
// that expose what the driver must get right (environment, deadlines,
// cancellation, sizes, child processes, output, callbacks).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/pluginsdk"
)

func main() {
	var (
		host    pluginsdk.Host
		active  atomic.Int64 // running "sleep" handlers
		ended   atomic.Value // how the last "sleep" ended: its ctx.Err(), or "slept"
		logger  hclog.Logger
		release = make(chan struct{}) // never closed: "block" waits forever
	)
	h := map[string]pluginsdk.HandlerFunc{
		"echo": func(_ context.Context, r *pluginsdk.Request) ([]byte, error) { return r.Args, nil },
		"caller": func(_ context.Context, r *pluginsdk.Request) ([]byte, error) {
			return []byte(r.Caller.String() + " " + r.Kind.String()), nil
		},
		"env": func(context.Context, *pluginsdk.Request) ([]byte, error) {
			return []byte(strings.Join(os.Environ(), "\n")), nil
		},
		// sleep sleeps for args (a duration) or until cancelled.
		"sleep": func(ctx context.Context, r *pluginsdk.Request) ([]byte, error) {
			d, err := time.ParseDuration(string(r.Args))
			if err != nil {
				return nil, err
			}
			active.Add(1)
			defer active.Add(-1)
			select {
			case <-time.After(d):
				ended.Store("slept")
				return r.Args, nil
			case <-ctx.Done():
				ended.Store(ctx.Err().Error())
				return nil, ctx.Err()
			}
		},
		"ended": func(context.Context, *pluginsdk.Request) ([]byte, error) {
			s := ended.Swap("")
			text, _ := s.(string)
			return []byte(text), nil
		},
		"active": func(context.Context, *pluginsdk.Request) ([]byte, error) {
			return []byte(strconv.FormatInt(active.Load(), 10)), nil
		},
		// deadline returns the time left until the call's deadline.
		"deadline": func(ctx context.Context, _ *pluginsdk.Request) ([]byte, error) {
			dl, ok := ctx.Deadline()
			if !ok {
				return []byte("none"), nil
			}
			return []byte(time.Until(dl).String()), nil
		},
		// big returns args (a decimal) bytes.
		"big": func(_ context.Context, r *pluginsdk.Request) ([]byte, error) {
			n, err := strconv.Atoi(string(r.Args))
			if err != nil {
				return nil, err
			}
			return make([]byte, n), nil
		},
		// block ignores its context and never returns.
		"block": func(context.Context, *pluginsdk.Request) ([]byte, error) {
			<-release
			return nil, nil
		},
		// spawn starts a long sleep in the plugin's process group and
		// returns its pid.
		"spawn": func(context.Context, *pluginsdk.Request) ([]byte, error) {
			cmd := exec.Command("/bin/sleep", "600")
			if err := cmd.Start(); err != nil {
				return nil, err
			}
			go cmd.Wait()
			return []byte(strconv.Itoa(cmd.Process.Pid)), nil
		},
		// escape starts a process that leaves the plugin's process group
		// (a session of its own) and keeps its stdout and stderr.
		"escape": func(context.Context, *pluginsdk.Request) ([]byte, error) {
			cmd := exec.Command("/bin/sleep", "600")
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := cmd.Start(); err != nil {
				return nil, err
			}
			go cmd.Wait()
			return []byte(strconv.Itoa(cmd.Process.Pid)), nil
		},
		"exit": func(context.Context, *pluginsdk.Request) ([]byte, error) {
			os.Exit(7)
			return nil, nil
		},
		"print": func(_ context.Context, r *pluginsdk.Request) ([]byte, error) {
			fmt.Println(string(r.Args))
			return nil, nil
		},
		"log": func(_ context.Context, r *pluginsdk.Request) ([]byte, error) {
			logger.Warn(string(r.Args), "from", "testplugin")
			return nil, nil
		},
		// hostcall calls handle args on the caller, through the host, and
		// names the pluginsdk error it got.
		"hostcall": func(ctx context.Context, r *pluginsdk.Request) ([]byte, error) {
			_, err := host.Call(ctx, r.Caller, string(r.Args), nil)
			return []byte(errorName(err)), nil
		},
	}
	cfg := pluginsdk.Config{
		Name:     "testplugin",
		Version:  "0.0.1",
		Handlers: make(map[string]pluginsdk.Handler, len(h)),
		Configure: func(_ context.Context, hst pluginsdk.Host, config []byte) error {
			if string(config) == "fail" {
				return errors.New("configuration rejected")
			}
			host = hst
			return nil
		},
	}
	for name, f := range h {
		cfg.Handlers[name] = f
	}
	logger = hclog.New(&hclog.LoggerOptions{Name: "testplugin", Output: os.Stderr, JSONFormat: true, Level: hclog.Info})
	cfg.Logger = logger
	pluginsdk.Serve(cfg)
}

func errorName(err error) string {
	var he *pluginsdk.Error
	switch {
	case err == nil:
		return "nil"
	case errors.As(err, &he) && errors.Is(err, pluginsdk.ErrHandlerError):
		return "HandlerError:" + he.Message
	}
	for name, e := range map[string]error{
		"ErrUnavailable":    pluginsdk.ErrUnavailable,
		"ErrNotConnected":   pluginsdk.ErrNotConnected,
		"ErrConnLost":       pluginsdk.ErrConnLost,
		"ErrNotTrusted":     pluginsdk.ErrNotTrusted,
		"ErrNoSuchHandle":   pluginsdk.ErrNoSuchHandle,
		"ErrForbidden":      pluginsdk.ErrForbidden,
		"ErrHandlerCrashed": pluginsdk.ErrHandlerCrashed,
		"ErrOverloaded":     pluginsdk.ErrOverloaded,
		"ErrTooLarge":       pluginsdk.ErrTooLarge,
		"ErrBadRequest":     pluginsdk.ErrBadRequest,
		"DeadlineExceeded":  context.DeadlineExceeded,
		"Canceled":          context.Canceled,
	} {
		if errors.Is(err, e) {
			return name
		}
	}
	return "other:" + err.Error()
}
