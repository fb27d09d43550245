package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Payload sizes of the sequential case, and of the rps and mbps cases.
const (
	smallPayload = 64
	bulkPayload  = 64 << 10
)

// echoer makes one echo call over a system's one shared client connection.
// echo blocks until the reply is in and must be safe for concurrent use;
// the caller keeps p and owns the returned slice.
type echoer interface {
	echo(ctx context.Context, p []byte) ([]byte, error)
}

// system is one compared implementation: an echo server, one client
// connection to it, and a way to time a fresh connection's first reply.
type system struct {
	name   string
	client echoer
	// connect opens a new connection to the server, makes one 64-byte echo
	// call over it and closes it; it returns the time from the start of the
	// dial to the reply, excluding any set-up and tear-down around it.
	connect func(ctx context.Context) (time.Duration, error)
	// close stops the server and the client; it blocks until they are down.
	close func()
	// childPID, if set, is the process the system's server runs in
	// besides this one (a plugin): its CPU time is added to this process's
	// for the CPU figures, and the plugin section reports its RSS.
	childPID func() int
}

// cpuTime is the CPU time used so far by the processes sys runs in.
func (sys system) cpuTime() time.Duration {
	d := cpuTime()
	if sys.childPID != nil {
		d += processCPU(sys.childPID())
	}
	return d
}

// systemResult holds one system's figures; zero fields were not measured.
type systemResult struct {
	Name        string      `json:"name"`
	Seq         []seqResult `json:"sequential,omitempty"`
	CallsPerSec float64     `json:"calls_per_sec_64B,omitempty"`
	// CPUPerCallUs is the process's CPU time per call in the calls/s case,
	// client and server together: a figure that load from elsewhere on the
	// machine disturbs less than calls/s.
	CPUPerCallUs float64 `json:"cpu_us_per_call_64B,omitempty"`
	MBPerSec     float64 `json:"mb_per_sec_64KiB,omitempty"`
	CPUPerMBUs   float64 `json:"cpu_us_per_MB_64KiB,omitempty"`
	ConnectUs    float64 `json:"connect_first_reply_p50_us,omitempty"`
	ConnectMin   float64 `json:"connect_first_reply_min_us,omitempty"`
	// RSSIdle and RSSAfterBulk are the VmRSS of the server's own process
	// (a plugin's), in bytes, just started and after the 64 KiB case; the
	// plugin section fills them in.
	RSSIdle      int64 `json:"rss_idle_bytes,omitempty"`
	RSSAfterBulk int64 `json:"rss_after_64KiB_bytes,omitempty"`
}

type seqResult struct {
	Size  int     `json:"size"`
	P50Us float64 `json:"p50_us"`
	P99Us float64 `json:"p99_us"`
	CPUUs float64 `json:"cpu_us_per_call"`
}

func (r *systemResult) seq(size int) (*seqResult, bool) {
	for i := range r.Seq {
		if r.Seq[i].Size == size {
			return &r.Seq[i], true
		}
	}
	return &seqResult{}, false
}

// measureSystems runs the selected cases on every system, case by case
// and round by round, so that the systems are measured close together in
// time and a burst of load from elsewhere on the machine hits one round, not
// one system. Each figure is the best of the rounds.
func measureSystems(o *options, systems []system) ([]*systemResult, error) {
	ctx := context.Background()
	results := make([]*systemResult, len(systems))
	for i, sys := range systems {
		results[i] = &systemResult{Name: sys.name}
	}
	each := func(what string, f func(sys system, res *systemResult) error) error {
		for round := range o.rounds {
			for i, sys := range systems {
				o.progress("%s: %s (round %d of %d)", sys.name, what, round+1, o.rounds)
				runtime.GC()
				if err := f(sys, results[i]); err != nil {
					return fmt.Errorf("%s: %s: %w", sys.name, what, err)
				}
			}
		}
		return nil
	}
	if o.does("seq") {
		for _, size := range o.sizes {
			err := each(fmt.Sprintf("sequential, %d B, %d calls", size, o.n), func(sys system, res *systemResult) error {
				cpu0 := sys.cpuTime()
				lat, err := sequential(ctx, sys.client, size, o.warm, o.n)
				if err != nil {
					return err
				}
				cpu := sys.cpuTime() - cpu0
				r := seqResult{Size: size, P50Us: micros(percentile(lat, 50)), P99Us: micros(percentile(lat, 99)),
					CPUUs: micros(cpu) / float64(o.warm+o.n)}
				if old, ok := res.seq(size); !ok {
					res.Seq = append(res.Seq, r)
				} else if r.P50Us < old.P50Us {
					*old = r
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	if o.does("rps") {
		err := each(fmt.Sprintf("%d in flight, %d B, %v", o.inflight, smallPayload, o.dur), func(sys system, res *systemResult) error {
			t, err := throughput(ctx, sys, smallPayload, o.inflight, o.warmDur, o.dur)
			if err != nil {
				return err
			}
			if v := t.perSec(); v > res.CallsPerSec {
				res.CallsPerSec, res.CPUPerCallUs = v, t.cpuPerCall()
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if o.does("mbps") {
		err := each(fmt.Sprintf("%d in flight, %d B, %v", o.inflight, bulkPayload, o.dur), func(sys system, res *systemResult) error {
			t, err := throughput(ctx, sys, bulkPayload, o.inflight, o.warmDur, o.dur)
			if err != nil {
				return err
			}
			if v := t.perSec() * bulkPayload / 1e6; v > res.MBPerSec {
				res.MBPerSec, res.CPUPerMBUs = v, t.cpuPerCall()*1e6/bulkPayload
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if o.does("connect") {
		err := each(fmt.Sprintf("connect to first reply, %d trials", o.connects), func(sys system, res *systemResult) error {
			var ds []time.Duration
			for range o.connects {
				d, err := sys.connect(ctx)
				if err != nil {
					return err
				}
				ds = append(ds, d)
			}
			if p50 := micros(percentile(ds, 50)); res.ConnectUs == 0 || p50 < res.ConnectUs {
				res.ConnectUs = p50
			}
			if m := micros(slices.Min(ds)); res.ConnectMin == 0 || m < res.ConnectMin {
				res.ConnectMin = m
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return results, nil
}

// cpuTime is the CPU time (user and system) this process has used so far,
// every goroutine included: clients and servers alike.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// payload returns size bytes of a pattern, so that a reply can be checked
// cheaply.
func payload(size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i % 251)
	}
	return p
}

func checkEcho(got, sent []byte) error {
	if len(got) != len(sent) || (len(got) > 0 && (got[0] != sent[0] || got[len(got)-1] != sent[len(sent)-1])) {
		return fmt.Errorf("echo returned %d bytes for %d, or different ones", len(got), len(sent))
	}
	return nil
}

// sequential makes warm calls, then n timed calls one after the other, and
// returns the n latencies.
func sequential(ctx context.Context, e echoer, size, warm, n int) ([]time.Duration, error) {
	p := payload(size)
	for range warm {
		r, err := e.echo(ctx, p)
		if err != nil {
			return nil, err
		}
		if err := checkEcho(r, p); err != nil {
			return nil, err
		}
	}
	lat := make([]time.Duration, n)
	for i := range lat {
		t0 := time.Now()
		r, err := e.echo(ctx, p)
		lat[i] = time.Since(t0)
		if err != nil {
			return nil, err
		}
		if err := checkEcho(r, p); err != nil {
			return nil, err
		}
	}
	return lat, nil
}

// tput is what one throughput run counted.
type tput struct {
	calls   int64
	elapsed time.Duration
	cpu     time.Duration // process CPU time over elapsed
}

func (t tput) perSec() float64 { return float64(t.calls) / t.elapsed.Seconds() }

func (t tput) cpuPerCall() float64 { return micros(t.cpu) / float64(t.calls) }

// throughput keeps inflight calls of size bytes running on sys's client,
// lets them warm up, then counts the calls that complete in d.
func throughput(ctx context.Context, sys system, size, inflight int, warm, d time.Duration) (tput, error) {
	e := sys.client
	var (
		count    atomic.Int64
		stop     atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := payload(size)
			for !stop.Load() {
				r, err := e.echo(ctx, p)
				if err == nil {
					err = checkEcho(r, p)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				count.Add(1)
			}
		}()
	}
	// A benchmark runs for a fixed time: sleeping is the point here.
	time.Sleep(warm)
	c0, t0, cpu0 := count.Load(), time.Now(), sys.cpuTime()
	time.Sleep(d)
	c1, el, cpu1 := count.Load(), time.Since(t0), sys.cpuTime()
	stop.Store(true)
	wg.Wait()
	if firstErr != nil {
		return tput{}, firstErr
	}
	if c1 == c0 {
		return tput{}, fmt.Errorf("no call completed in %v", d)
	}
	return tput{calls: c1 - c0, elapsed: el, cpu: cpu1 - cpu0}, nil
}

// percentile returns the p-th percentile (nearest rank) of ds; it sorts ds.
func percentile(ds []time.Duration, p int) time.Duration {
	slices.Sort(ds)
	rank := (len(ds)*p + 99) / 100 // ceil(len*p/100)
	return ds[max(rank-1, 0)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
