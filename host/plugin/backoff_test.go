package plugin

import (
	"math"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	tests := []struct {
		name     string
		pol      RestartPolicy
		n        int // crashes in the window
		min, max time.Duration
	}{
		{"first crash", RestartPolicy{BackoffMin: 200 * time.Millisecond, BackoffMax: 10 * time.Second}, 1, 100 * time.Millisecond, 200 * time.Millisecond},
		{"third crash doubles twice", RestartPolicy{BackoffMin: 200 * time.Millisecond, BackoffMax: 10 * time.Second}, 3, 400 * time.Millisecond, 800 * time.Millisecond},
		{"capped", RestartPolicy{BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second}, 10, 500 * time.Millisecond, time.Second},
		{"many crashes do not overflow", RestartPolicy{BackoffMin: 200 * time.Millisecond, BackoffMax: 10 * time.Second}, 500, 5 * time.Second, 10 * time.Second},
		{"huge maximum does not overflow", RestartPolicy{BackoffMin: time.Hour, BackoffMax: math.MaxInt64}, 200, math.MaxInt64 / 2, math.MaxInt64},
		{"min equals max", RestartPolicy{BackoffMin: time.Second, BackoffMax: time.Second}, 4, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 100 {
				if d := backoff(tt.pol, tt.n); d < tt.min || d > tt.max {
					t.Fatalf("backoff = %v, want within [%v, %v]", d, tt.min, tt.max)
				}
			}
		})
	}
}
