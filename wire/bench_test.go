package wire

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"
)

// BenchmarkHandshake measures one connection setup on loopback: TCP connect
// and accept, then the whole handshake until both sides hold an
// authenticated Conn (the dialer has read the verdict, the responder has
// sent it). It reports the median besides the mean.
func BenchmarkHandshake(b *testing.B) {
	dialer, responder := newTestLocal(b, "a"), newTestLocal(b, "b")
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
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds())/1e3, "median-µs")
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
