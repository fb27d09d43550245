package pluginclient_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/pluginclient"
	"github.com/peernet/peernet/pluginsdk/plugintest"
	"github.com/peernet/peernet/testing/peernettest"
)

const floodPlugin = "github.com/peernet/peernet/pluginsdk/pluginclient/internal/floodplugin"

// TestOutputFlood has a real plugin process flood its stdout, its stderr
// and its log for 2 s, with short lines and 64 KiB ones, and checks that
// the host's log grows by no more than the output limit allows for the
// time the plugin ran, that no line is longer than the cap, and that the
// dropped lines are summed up.
func TestOutputFlood(t *testing.T) {
	var buf peernettest.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	path, sum := plugintest.Build(t, floodPlugin)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	start := time.Now()
	c, err := pluginclient.Launch(ctx, pluginclient.LaunchConfig{
		Name: "flood", Path: path, SHA256: sum, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Call(ctx, &pluginsdk.Request{Handle: "flood", Args: []byte("2s")})
	if err != nil {
		c.Stop(ctx)
		t.Fatal(err)
	}
	// Stop waits until all the output has been read and logged.
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	ran := time.Since(start)
	written, err := strconv.Atoi(string(out))
	if err != nil {
		t.Fatalf("flood answered %q", out)
	}

	logged := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	// Lines of our own (the plugin stopping, say): a handful.
	const ownLines = 10
	bound := pluginclient.OutputBurst + int(ran.Seconds()*pluginclient.OutputRate) +
		int(ran/pluginclient.OutputSummaryInterval) + 2 + ownLines
	t.Logf("plugin wrote %d lines in %v; the host logged %d (bound %d)", written, ran.Round(time.Millisecond), len(logged), bound)
	if len(logged) > bound {
		t.Errorf("host logged %d lines in %v, over the limit of %d", len(logged), ran, bound)
	}
	if written < 10*bound {
		t.Fatalf("plugin wrote only %d lines: not a flood", written)
	}
	summary := false
	for _, l := range logged {
		// hclog adds a timestamp, level, name and stream to the line.
		if len(l) > pluginclient.MaxOutputLine+200 {
			t.Errorf("logged a %d-byte line, over the %d-byte cap: %.100q…", len(l), pluginclient.MaxOutputLine, l)
		}
		if strings.Contains(l, "suppressed") && strings.Contains(l, "lines of plugin output") {
			summary = true
		}
	}
	if !summary {
		t.Error("no summary of the suppressed lines in the host's log")
	}
}
