// Command floodplugin is a plugin that floods its output on request, for
// the test of the host's per-plugin output limits.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/pluginsdk"
)

func main() {
	log := hclog.New(&hclog.LoggerOptions{Name: "floodplugin", Output: os.Stderr, JSONFormat: true, Level: hclog.Info})
	long := strings.Repeat("x", 64<<10)
	pluginsdk.Serve(pluginsdk.Config{
		Name:    "floodplugin",
		Version: "0.0.1",
		Logger:  log,
		Handlers: map[string]pluginsdk.Handler{
			// flood writes lines as fast as it can for args (a duration):
			// to os.Stderr and os.Stdout (forwarded by go-plugin) and as
			// log entries (on the process's own stderr), some of them
			// 64 KiB long. It returns how many lines it wrote.
			"flood": pluginsdk.HandlerFunc(func(_ context.Context, r *pluginsdk.Request) ([]byte, error) {
				d, err := time.ParseDuration(string(r.Args))
				if err != nil {
					return nil, err
				}
				end := time.Now().Add(d)
				var lines atomic.Int64
				var wg sync.WaitGroup
				for _, write := range []func(i int){
					func(i int) { fmt.Fprintf(os.Stderr, "stderr line %d\n", i) },
					func(i int) { fmt.Fprintf(os.Stdout, "stdout line %d\n", i) },
					func(i int) { log.Error("log entry", "n", i) },
					func(i int) { fmt.Fprintf(os.Stderr, "long line %d %s\n", i, long) },
					func(i int) { log.Error("long entry", "n", i, "x", long) },
				} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; time.Now().Before(end); i++ {
							write(i)
							lines.Add(1)
						}
					}()
				}
				wg.Wait()
				return []byte(strconv.FormatInt(lines.Load(), 10)), nil
			}),
		},
	})
}
