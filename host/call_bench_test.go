package host_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/testing/peernettest"
)

// BenchmarkCall measures a 64-byte echo call between two nodes in this
// process: one at a time (Seq) and from 64 goroutines (Parallel64). Its
// allocs/op and cpu-ns/op (the process's user+system CPU time) are the
// whole round trip, client and server together; on a shared machine the
// CPU time is steadier than ns/op.
func BenchmarkCall(b *testing.B) {
	nodes := peernettest.Nodes(b, 2, host.Config{})
	client, server := nodes[0], nodes[1]
	if err := server.Expose("echo", host.HandlerFunc(echo), host.ExposeOptions{MaxConcurrent: -1}); err != nil {
		b.Fatal(err)
	}
	args := make([]byte, 64)
	ctx := context.Background()
	b.Run("Seq", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := client.Call(ctx, server.Identity(), "echo", args); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	})
	b.Run("Parallel64", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32) // 64 goroutines on two cores
		cpu0 := cpuTime()
		defer func() { b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op") }()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := client.Call(ctx, server.Identity(), "echo", args); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
