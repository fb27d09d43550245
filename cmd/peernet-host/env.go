package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/peernet/peernet/config"
	"github.com/peernet/peernet/control"
)

// cmdEnv is what a subcommand runs with.
type cmdEnv struct {
	name           string
	configPath     string
	configSet      bool // -config was given
	json           bool
	timeout        time.Duration
	stdout, stderr io.Writer
	stdin          io.Reader
	commands       map[string]*command // the command table, for completion

	// run's flags
	logFile string

	// init's flags
	initName   string
	initListen string
	initMDNS   bool
	initForce  bool
	initKeep   bool
}

// configOrigin says where the configuration file's path came from.
func (e *cmdEnv) configOrigin() string {
	switch {
	case e.configSet:
		return "given with -config"
	case os.Getenv("PEERNET_CONFIG") != "":
		return "named by $PEERNET_CONFIG"
	}
	return "the default: neither -config nor $PEERNET_CONFIG is set"
}

// client connects to the running node named by the configuration file.
// It reads only the file's node block (config.Locate), so that a node can
// be reached whatever has since happened to the rest of its file.
func (e *cmdEnv) client() (*control.Client, error) {
	loc, err := config.Locate(e.configPath)
	if err != nil {
		return nil, err
	}
	return control.NewClient(control.SocketPath(loc.DataDir))
}

// ctx bounds a control request by -timeout, or by def when it is unset.
func (e *cmdEnv) ctx(def time.Duration) (context.Context, context.CancelFunc) {
	d := e.timeout
	if d == 0 {
		d = def
	}
	if d <= 0 {
		return context.WithCancel(context.Background())
	}
	return context.WithTimeout(context.Background(), d)
}

// printJSON writes v as indented JSON.
func (e *cmdEnv) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows as aligned columns.
func (e *cmdEnv) table(header []any, rows [][]any) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	line := func(cells []any) {
		for i, c := range cells {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c)
		}
		fmt.Fprintln(tw)
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
	return tw.Flush()
}

// request runs op against the running node, with a context bounded by
// -timeout, or by def when it is unset (negative def: no bound).
func (e *cmdEnv) request(def time.Duration, op func(ctx context.Context, c *control.Client) error) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	ctx, cancel := e.ctx(def)
	defer cancel()
	return op(ctx, c)
}
