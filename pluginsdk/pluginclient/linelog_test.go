package pluginclient

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// longLine is over maxOutputLine; cutLine is what is logged of it.
var (
	longLine = strings.Repeat("x", maxOutputLine+5000)
	cutLine  = strings.Repeat("x", maxOutputLine) + " [line cut"
)

// TestLineLoggerCuts writes lines in uneven pieces and checks each is
// logged once, a long one cut to maxOutputLine with a note.
func TestLineLoggerCuts(t *testing.T) {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, DisableTime: true})
	w := &lineLogger{log: log, stream: "stderr", lim: newOutputLimiter(log)}
	in := "first\r\n" + longLine + "\nsecond\n" + strings.Repeat("y", maxOutputLine) + "\nthi"
	for len(in) > 0 {
		n := min(len(in), 1000)
		w.Write([]byte(in[:n]))
		in = in[n:]
	}
	w.Write([]byte("rd\n"))
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []string{"first", cutLine, "second", strings.Repeat("y", maxOutputLine) + ":", "third"}
	if len(got) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%.200q", len(got), len(want), got)
	}
	for i := range want {
		if !strings.Contains(got[i], "[INFO]  "+want[i]) {
			t.Errorf("line %d: %.120q…, want %.120q…", i, got[i], want[i])
		}
	}
}

// TestLineLoggerRelogsEntries: a line that is a JSON log entry is logged
// at its level with its fields; a malformed or hostile one (a number where
// a string belongs) is logged as it is, never a panic.
func TestLineLoggerRelogsEntries(t *testing.T) {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, DisableTime: true, Level: hclog.Trace})
	w := &lineLogger{log: log, stream: "stderr", lim: newOutputLimiter(log)}
	w.Write([]byte(`{"@level":"warn","@message":"disk low","@timestamp":"2026-12-02T10:00:00.000000Z","free":12}` + "\n"))
	w.Write([]byte(`{"@level":7,"@message":1}` + "\n" + `{"@message":"no level"}` + "\n"))
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []string{
		"[WARN]  disk low: free=12",
		`[INFO]  {"@level":7,"@message":1}: stream=stderr`,
		"[INFO]  no level",
	}
	if len(got) != len(want) {
		t.Fatalf("logged %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// TestLimiterBurstThenRate checks the bucket: a burst of outputBurst lines,
// then nothing until tokens come back, and one summary of what was dropped.
func TestLimiterBurstThenRate(t *testing.T) {
	var buf bytes.Buffer
	o := newOutputLimiter(hclog.New(&hclog.LoggerOptions{Output: &buf}))
	allowed := 0
	for range 10 * outputBurst {
		if o.allow() {
			allowed++
		}
	}
	// A slow machine may refill a token or two meanwhile.
	if allowed < outputBurst || allowed > outputBurst+5 {
		t.Errorf("allowed %d of %d lines at once, want the burst, %d", allowed, 10*outputBurst, outputBurst)
	}
	o.flush()
	if n := strings.Count(buf.String(), "lines of plugin output"); n != 1 {
		t.Errorf("%d summaries, want 1: %s", n, buf.String())
	}
	o.flush()
	if n := strings.Count(buf.String(), "lines of plugin output"); n != 1 {
		t.Errorf("a second flush with nothing suppressed logged a summary: %s", buf.String())
	}
}
