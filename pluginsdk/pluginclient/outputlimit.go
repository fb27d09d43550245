package pluginclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin/runner"
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

// limitedRunner is a plugin process whose stderr, which go-plugin reads
// for the plugin's log entries, passes only the lines its limiter allows,
// each cut to maxOutputLine.
type limitedRunner struct {
	runner.Runner
	stderr io.ReadCloser
}

func (r limitedRunner) Stderr() io.ReadCloser { return r.stderr }

// limitLines returns src, a plugin's stderr, filtered through lim.
func limitLines(src io.ReadCloser, lim *outputLimiter) io.ReadCloser {
	return &limitedLines{src: src, r: bufio.NewReaderSize(src, maxOutputLine), lim: lim}
}

// limitedLines reads whole lines from a plugin's output and returns those
// its limiter allows. Only go-plugin's stderr goroutine reads it.
type limitedLines struct {
	src     io.ReadCloser
	r       *bufio.Reader
	lim     *outputLimiter
	pending []byte // an allowed line, not yet read in full
}

func (l *limitedLines) Read(p []byte) (int, error) {
	for len(l.pending) == 0 {
		line, err := readCappedLine(l.r)
		if len(line) > 0 && l.lim.allow() {
			l.pending = line
		}
		if err != nil {
			if len(l.pending) > 0 {
				break // return the line now and the error at the next Read
			}
			l.lim.flush()
			return 0, err
		}
	}
	n := copy(p, l.pending)
	l.pending = l.pending[n:]
	return n, nil
}

func (l *limitedLines) Close() error { return l.src.Close() }

// readCappedLine returns the next line from r, ending in "\n", cut to the
// reader's buffer size (maxOutputLine) with a note of how much was dropped.
// The line is the caller's.
func readCappedLine(r *bufio.Reader) ([]byte, error) {
	chunk, err := r.ReadSlice('\n')
	line := append([]byte(nil), chunk...)
	if !errors.Is(err, bufio.ErrBufferFull) {
		if err == nil || len(line) == 0 {
			return line, err
		}
		return append(line, '\n'), err // the last line had no newline
	}
	dropped := 0
	for errors.Is(err, bufio.ErrBufferFull) {
		chunk, err = r.ReadSlice('\n')
		dropped += len(chunk)
	}
	return fmt.Appendf(line, " [line cut: %d more bytes dropped]\n", dropped), err
}
