package wire

import (
	"context"
	"fmt"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkHandshake measures one connection setup on loopback: TCP connect
// and accept, then the whole handshake until both sides hold an
// authenticated Conn (the dialer has read the verdict, the responder has
// sent it), with each suite. It reports the median besides the mean.
func BenchmarkHandshake(b *testing.B) {
	for _, suite := range []Suite{SuiteChaChaPoly, SuiteAESGCM} {
		b.Run(suite.String(), func(b *testing.B) { benchmarkHandshake(b, suite) })
	}
}

func benchmarkHandshake(b *testing.B, suite Suite) {
	dialer, responder := newTestLocalSuite(b, "a", suite), newTestLocal(b, "b")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			c, err := Server(context.Background(), raw, responder, acceptAll)
			if err == nil {
				c.Close()
			}
			served <- err
		}
	}()
	ctx := context.Background()
	times := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for b.Loop() {
		start := time.Now()
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		c, err := Client(ctx, raw, dialer, responder.PeerID())
		if err != nil {
			b.Fatal(err)
		}
		if err := <-served; err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
		c.Close()
	}
	b.StopTimer()
	// CPU time, both sides together, is what load from elsewhere on the
	// machine disturbs least.
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/1e3/float64(len(times)), "cpu-µs/op")
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds())/1e3, "median-µs")
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkThroughput compares plain loopback TCP with a Conn over it, one
// Write of each size per op, so the cost of the record layer shows in one
// run.
func BenchmarkThroughput(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10, 64 << 10, 1 << 20} {
		for _, kind := range []string{"plain", "secure"} {
			b.Run(fmt.Sprintf("%s/%dKiB", kind, size>>10), func(b *testing.B) {
				var w, r net.Conn
				if kind == "plain" {
					w, r = tcpPair(b)
				} else {
					w, r = connPair(b)
				}
				done := make(chan int64, 1)
				go func() {
					buf := make([]byte, 256<<10)
					var n int64
					for {
						m, err := r.Read(buf)
						n += int64(m)
						if err != nil {
							done <- n
							return
						}
					}
				}()
				data := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				var sent int64
				for b.Loop() {
					if _, err := w.Write(data); err != nil {
						b.Fatal(err)
					}
					sent += int64(size)
				}
				w.Close()
				if got := <-done; got != sent {
					b.Fatalf("reader got %d bytes, sent %d", got, sent)
				}
			})
		}
	}
}
