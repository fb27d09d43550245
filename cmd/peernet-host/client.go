package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/peernet/peernet/control"
	"github.com/peernet/peernet/rpc"
)

// requestTimeout bounds control requests other than calls.
const requestTimeout = 30 * time.Second

func status(env *cmdEnv, args []string) error {
	if len(args) != 0 {
		return usagef("status takes no arguments")
	}
	return env.request(requestTimeout, func(ctx context.Context, c *control.Client) error {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if env.json {
			return env.printJSON(st)
		}
		state := "running"
		if !st.Ready {
			state = "starting plugins"
		}
		fmt.Fprintf(env.stdout, "node      %s\nid        %s\nstate     %s\nlisten    %s\nuptime    %s\npeers     %d trusted, %d connected\ninflight  %d\n\n",
			st.Name, st.ID, state, st.Listen, time.Duration(st.Uptime), st.Peers, st.Connected, st.Inflight)
		return printPlugins(env, st.Plugins)
	})
}

func peers(env *cmdEnv, args []string) error {
	if len(args) != 0 {
		return usagef("peers takes no arguments")
	}
	return env.request(requestTimeout, func(ctx context.Context, c *control.Client) error {
		ps, err := c.Peers(ctx)
		if err != nil {
			return err
		}
		return printPeers(env, ps)
	})
}

func printPeers(env *cmdEnv, ps []control.Peer) error {
	if env.json {
		return env.printJSON(ps)
	}
	rows := make([][]any, len(ps))
	for i, p := range ps {
		state, maxMsg := "down", ""
		if p.Connected {
			state = "up"
		}
		if p.PeerMaxMessageSize > 0 {
			maxMsg = strconv.Itoa(p.PeerMaxMessageSize)
		}
		rows[i] = []any{p.Label, p.ID, state, dash(p.Addr), dash(p.Source), dash(p.Suite), dash(maxMsg), p.AddedAt.Local().Format(time.DateTime)}
	}
	return env.table([]any{"LABEL", "ID", "STATE", "ADDRESS", "FOUND", "SUITE", "PEER MAX MSG", "TRUSTED SINCE"}, rows)
}

func trustCmd(env *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usagef("trust needs add, relabel, remove or list")
	}
	switch {
	case args[0] == "add" && len(args) == 3:
	case args[0] == "relabel" && len(args) == 3:
	case args[0] == "remove" && len(args) == 2:
	case args[0] == "list" && len(args) == 1:
	default:
		return usagef("usage: trust add PEERID LABEL | trust relabel PEER LABEL | trust remove PEER | trust list")
	}
	return env.request(requestTimeout, func(ctx context.Context, c *control.Client) error {
		switch args[0] {
		case "add":
			if err := c.Trust(ctx, args[1], args[2]); err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "trusted %s as %q\n", args[1], args[2])
		case "relabel":
			if err := c.Relabel(ctx, args[1], args[2]); err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "relabelled %s as %q\n", args[1], args[2])
		case "remove":
			if err := c.Untrust(ctx, args[1]); err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "no longer trusting %s\n", args[1])
		case "list":
			ps, err := c.Peers(ctx)
			if err != nil {
				return err
			}
			return printPeers(env, ps)
		}
		return nil
	})
}

func connect(env *cmdEnv, args []string) error {
	if len(args) != 2 {
		return usagef("connect needs PEER and HOST:PORT")
	}
	return env.request(requestTimeout, func(ctx context.Context, c *control.Client) error {
		if err := c.Connect(ctx, args[0], args[1]); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "connected to %s\n", args[0])
		return nil
	})
}

func disconnect(env *cmdEnv, args []string) error {
	if len(args) != 1 {
		return usagef("disconnect needs PEER")
	}
	return env.request(requestTimeout, func(ctx context.Context, c *control.Client) error {
		if err := c.Disconnect(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "disconnected from %s (still trusted; not redialled until the next connect)\n", args[0])
		return nil
	})
}

// callArgs builds a call request from PEER HANDLE [ARGS | -].
func callArgs(env *cmdEnv, args []string) (control.CallRequest, error) {
	if len(args) < 2 || len(args) > 3 {
		return control.CallRequest{}, usagef("need PEER HANDLE [ARGS | -]")
	}
	req := control.CallRequest{Peer: args[0], Handle: args[1], Timeout: control.Duration(env.timeout)}
	if len(args) == 3 {
		if args[2] == "-" {
			b, err := io.ReadAll(env.stdin)
			if err != nil {
				return req, fmt.Errorf("reading arguments from stdin: %w", err)
			}
			req.Args = b
		} else {
			req.Args = []byte(args[2])
		}
	}
	return req, nil
}

// callResult is what "call -json" prints for a call that succeeded.
type callResult struct {
	Status string `json:"status"` // "ok"
	// Text is the result when it is valid UTF-8, for scripts that expect
	// text; Base64 is the result whatever it is.
	Text   *string `json:"text,omitempty"`
	Base64 []byte  `json:"base64"`
}

func call(env *cmdEnv, args []string) error {
	req, err := callArgs(env, args)
	if err != nil {
		return err
	}
	c, err := env.client()
	if err != nil {
		return err
	}
	// The node applies the call's own timeout and answers when it passes;
	// this deadline only guards against a node that does not answer.
	ctx, cancel := context.WithCancel(context.Background())
	if env.timeout > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), env.timeout+requestTimeout)
	}
	defer cancel()
	res, err := c.Call(ctx, req)
	if err != nil {
		return err
	}
	if env.json {
		out := callResult{Status: rpc.StatusOK.String(), Base64: res}
		if utf8.Valid(res) {
			text := string(res)
			out.Text = &text
		}
		return env.printJSON(out)
	}
	env.stdout.Write(res)
	if len(res) > 0 && res[len(res)-1] != '\n' {
		fmt.Fprintln(env.stdout)
	}
	return nil
}

func send(env *cmdEnv, args []string) error {
	req, err := callArgs(env, args)
	if err != nil {
		return err
	}
	return env.request(requestTimeout, func(ctx context.Context, c *control.Client) error {
		return c.Send(ctx, req)
	})
}

func plugins(env *cmdEnv, args []string) error {
	if len(args) != 0 {
		return usagef("plugins takes no arguments")
	}
	return env.request(requestTimeout, func(ctx context.Context, c *control.Client) error {
		ps, err := c.Plugins(ctx)
		if err != nil {
			return err
		}
		if env.json {
			return env.printJSON(ps)
		}
		return printPlugins(env, ps)
	})
}

func printPlugins(env *cmdEnv, ps []control.PluginStatus) error {
	rows := make([][]any, len(ps))
	for i, p := range ps {
		pid := "-"
		if p.Pid != 0 {
			pid = fmt.Sprint(p.Pid)
		}
		rows[i] = []any{p.Name, dash(p.Version), p.State, p.Generation, pid, p.Restarts, p.InFlight, dash(strings.Join(p.Handles, ","))}
	}
	if err := env.table([]any{"PLUGIN", "VERSION", "STATE", "GEN", "PID", "RESTARTS", "INFLIGHT", "HANDLES"}, rows); err != nil {
		return err
	}
	for _, p := range ps {
		if p.LastError != "" {
			fmt.Fprintf(env.stdout, "%s: last error: %s\n", p.Name, p.LastError)
		}
	}
	return nil
}

func reload(env *cmdEnv, args []string) error {
	if len(args) != 0 {
		return usagef("reload takes no arguments")
	}
	return env.request(2*time.Minute, func(ctx context.Context, c *control.Client) error {
		r, err := c.Reload(ctx)
		if err != nil {
			return err
		}
		if env.json {
			return env.printJSON(r)
		}
		fmt.Fprintf(env.stdout, "reloaded: peers %s; plugins %s\n", list(r.Peers), list(r.Plugins))
		for _, s := range r.RestartNeeded {
			fmt.Fprintf(env.stdout, "note: %s\n", s)
		}
		if r.Warning != "" {
			fmt.Fprintf(env.stderr, "warning: %s\n", r.Warning)
			return fmt.Errorf("some plugins did not start")
		}
		return nil
	})
}

func revoke(env *cmdEnv, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usagef("revoke needs PLUGIN [HANDLE]")
	}
	handle := ""
	if len(args) == 2 {
		handle = args[1]
	}
	return env.request(2*time.Minute, func(ctx context.Context, c *control.Client) error {
		if err := c.Revoke(ctx, args[0], handle); err != nil {
			return err
		}
		if handle == "" {
			fmt.Fprintf(env.stdout, "revoked plugin %s\n", args[0])
		} else {
			fmt.Fprintf(env.stdout, "revoked %s of plugin %s\n", handle, args[0])
		}
		return nil
	})
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func list(items []string) string {
	if len(items) == 0 {
		return "unchanged"
	}
	return strings.Join(items, " ")
}
