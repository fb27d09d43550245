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
//
// Environment:
//
//	TESTPLUGIN_DIE     "start": exit with status 2 before serving; a Go
//	                   duration: exit with status 2 that long after starting.
//	TESTPLUGIN_STARTS  a file to which every start appends its pid on a
//	                   line, so that a test can count launches.
//	TESTPLUGIN_DELAY   a Go duration to wait before serving: a slow start.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/peernet/peernet/pluginsdk"
)

// version is reported to the node; tests override it with
// -ldflags "-X main.version=...".
var version = "1"

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
		d, err := time.ParseDuration(die)
		if err != nil {
			os.Exit(2)
		}
		time.AfterFunc(d, func() { os.Exit(2) })
	}
	if d, err := time.ParseDuration(os.Getenv("TESTPLUGIN_DELAY")); err == nil {
		time.Sleep(d)
	}
	pluginsdk.Serve(pluginsdk.Config{
		Name:    "testplugin",
		Version: version,
		Handlers: map[string]pluginsdk.Handler{
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
