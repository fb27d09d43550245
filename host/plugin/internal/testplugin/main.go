// Command testplugin is the plugin the supervisor's tests run where the echo
// example does not do: its version is set at link time, so that two builds
// are two different binaries, and the environment tells it how to die.
//
// Handles:
//
//	echo     returns its arguments.
//	version  returns the version it was built with.
//	sleep    args are a Go duration; sleeps that long or until the call is
//	         cancelled, then returns the args.
//	status   args name a status ("forbidden", "handler_error", ...); fails
//	         with that status and the message "reason", as a handler does:
//	         a plain error for handler_error, a panic for handler_crashed,
//	         the status's sentinel wrapped for the others.
//	callback args are JSON {"peer", "handle", "args", "timeout", "size"}: calls
//	         handle on peer through the host and reports the outcome as
//	         "SENTINELS|TEXT": the pluginsdk sentinels the error matches
//	         with errors.Is (comma-separated) and the error's text.
//
// Environment:
//
//	TESTPLUGIN_DIE     "start": exit with status 2 before serving;
//	                   "file:PATH": exit with status 2 as soon as PATH
//	                   exists (checked every 5 ms); a Go duration: exit
//	                   with status 2 that long after starting.
//	TESTPLUGIN_STARTS  a file to which every start appends its pid on a
//	                   line, so that a test can count launches.
//	TESTPLUGIN_DELAY   a Go duration to wait before serving: a slow start;
//	                   "file:PATH": wait until PATH exists (checked every
//	                   5 ms).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/peernet/peernet/pluginsdk"
)

// version is reported to the node; tests override it with
// -ldflags "-X main.version=...".
var version = "1"

// sentinels are the outcomes the callback handle checks for, by name.
var sentinels = []struct {
	name string
	err  error
}{
	{"ErrNoSuchHandle", pluginsdk.ErrNoSuchHandle},
	{"ErrForbidden", pluginsdk.ErrForbidden},
	{"ErrHandlerError", pluginsdk.ErrHandlerError},
	{"ErrHandlerCrashed", pluginsdk.ErrHandlerCrashed},
	{"ErrUnavailable", pluginsdk.ErrUnavailable},
	{"ErrOverloaded", pluginsdk.ErrOverloaded},
	{"ErrTooLarge", pluginsdk.ErrTooLarge},
	{"ErrNotConnected", pluginsdk.ErrNotConnected},
	{"ErrConnLost", pluginsdk.ErrConnLost},
	{"ErrNotTrusted", pluginsdk.ErrNotTrusted},
	{"ErrBadRequest", pluginsdk.ErrBadRequest},
	{"DeadlineExceeded", context.DeadlineExceeded},
	{"Canceled", context.Canceled},
}

func status(_ context.Context, r *pluginsdk.Request) ([]byte, error) {
	name := string(r.Args)
	switch name {
	case "handler_error":
		return nil, errors.New("reason")
	case "handler_crashed":
		panic("reason")
	}
	for s := range 256 {
		if st := pluginsdk.Status(s); st.String() == name {
			return nil, fmt.Errorf("%w: reason", st.Err())
		}
	}
	return nil, fmt.Errorf("no status %q", name)
}

func callback(host *pluginsdk.Host) pluginsdk.HandlerFunc {
	return func(ctx context.Context, r *pluginsdk.Request) ([]byte, error) {
		var a struct {
			Peer    pluginsdk.PeerID `json:"peer"`
			Handle  string           `json:"handle"`
			Args    string           `json:"args"`
			Timeout string           `json:"timeout"`
			Size    int              `json:"size"` // args of this many bytes instead
		}
		if err := json.Unmarshal(r.Args, &a); err != nil {
			return nil, err
		}
		if a.Timeout != "" {
			d, err := time.ParseDuration(a.Timeout)
			if err != nil {
				return nil, err
			}
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		args := []byte(a.Args)
		if a.Size > 0 {
			args = make([]byte, a.Size)
		}
		_, err := (*host).Call(ctx, a.Peer, a.Handle, args)
		if err == nil {
			return []byte("|"), nil
		}
		var names []string
		for _, s := range sentinels {
			if errors.Is(err, s.err) {
				names = append(names, s.name)
			}
		}
		return []byte(strings.Join(names, ",") + "|" + err.Error()), nil
	}
}

func main() {
	if path := os.Getenv("TESTPLUGIN_STARTS"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err == nil {
			fmt.Fprintln(f, os.Getpid())
			f.Close()
		}
	}
	switch die := os.Getenv("TESTPLUGIN_DIE"); die {
	case "":
	case "start":
		os.Exit(2)
	default:
		if path, ok := strings.CutPrefix(die, "file:"); ok {
			go func() {
				for {
					if _, err := os.Stat(path); err == nil {
						os.Exit(2)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			break
		}
		d, err := time.ParseDuration(die)
		if err != nil {
			os.Exit(2)
		}
		time.AfterFunc(d, func() { os.Exit(2) })
	}
	delay := os.Getenv("TESTPLUGIN_DELAY")
	if path, ok := strings.CutPrefix(delay, "file:"); ok {
		for {
			if _, err := os.Stat(path); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	} else if d, err := time.ParseDuration(delay); err == nil {
		time.Sleep(d)
	}
	var host pluginsdk.Host // set by Configure, before any call
	pluginsdk.Serve(pluginsdk.Config{
		Name:    "testplugin",
		Version: version,
		Configure: func(_ context.Context, h pluginsdk.Host, _ []byte) error {
			host = h
			return nil
		},
		Handlers: map[string]pluginsdk.Handler{
			"status":   pluginsdk.HandlerFunc(status),
			"callback": callback(&host),
			"echo": pluginsdk.HandlerFunc(func(_ context.Context, r *pluginsdk.Request) ([]byte, error) {
				return r.Args, nil
			}),
			"version": pluginsdk.HandlerFunc(func(context.Context, *pluginsdk.Request) ([]byte, error) {
				return []byte(version), nil
			}),
			"sleep": pluginsdk.HandlerFunc(func(ctx context.Context, r *pluginsdk.Request) ([]byte, error) {
				d, err := time.ParseDuration(string(r.Args))
				if err != nil {
					return nil, err
				}
				t := time.NewTimer(d)
				defer t.Stop()
				select {
				case <-t.C:
					return r.Args, nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}),
		},
	})
}
