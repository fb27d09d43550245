package pluginclient

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Limits on a plugin's output. The host logs every line a plugin prints to
// stdout or stderr, and every log entry it writes (hclog JSON on its
// stderr); one budget per plugin process, shared by all three, keeps a
// flooding plugin from growing the host's log without bound: the host log
// gains at most outputBurst + outputRate·t lines from a plugin in t seconds,
// plus a summary of what was dropped at most every outputSummaryInterval,
// and no line longer than about maxOutputLine bytes.
const (
	// outputBurst is how many lines a quiet plugin may output at once.
	outputBurst = 100
	// outputRate is the lines per second a plugin may output after a burst.
	outputRate = 20
	// maxOutputLine caps one line of output, in bytes; the rest of a longer
	// line is dropped, and the line says how much.
	maxOutputLine = 4 << 10
	// outputSummaryInterval spaces the summaries of suppressed lines.
	outputSummaryInterval = 5 * time.Second
)

// outputLimiter is a plugin's output budget: a token bucket of lines. It is
// safe for concurrent use (stdout, stderr and log entries come from
// different goroutines).
type outputLimiter struct {
	log hclog.Logger // for the summaries

	mu         sync.Mutex
	tokens     float64
	last       time.Time // of the last refill
	suppressed int       // lines dropped since the last summary
	lastReport time.Time // of the last summary
}

func newOutputLimiter(log hclog.Logger) *outputLimiter {
	return &outputLimiter{log: log, tokens: outputBurst, last: time.Now()}
}

// allow reports whether one more line may be logged now, and counts it as
// suppressed if not. Before letting a line through after some were dropped,
// it logs how many, at most every outputSummaryInterval.
func (o *outputLimiter) allow() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	o.tokens = min(outputBurst, o.tokens+now.Sub(o.last).Seconds()*outputRate)
	o.last = now
	if o.tokens < 1 {
		o.suppressed++
		return false
	}
	o.tokens--
	if o.suppressed > 0 && now.Sub(o.lastReport) >= outputSummaryInterval {
		o.reportLocked(now)
	}
	return true
}

// flush logs the summary of lines suppressed since the last one, if any;
// it is called when the plugin's output ends.
func (o *outputLimiter) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.suppressed > 0 {
		o.reportLocked(time.Now())
	}
}

func (o *outputLimiter) reportLocked(now time.Time) {
	o.log.Warn(fmt.Sprintf("suppressed %d lines of plugin output: over the limit of %d lines at once, then %d a second",
		o.suppressed, outputBurst, outputRate), "suppressed", o.suppressed)
	o.suppressed = 0
	o.lastReport = now
}
