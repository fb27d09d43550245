// Command testprogress runs "go test -json" ($GO test -json, if GO is set)
// with the arguments it is given and prints, as the tests run, a line per
// package as it finishes, the output of every test that fails, the tests
// that took long, and, when nothing has finished for a while, what is
// still running. It exits with go test's exit code. "make test" runs the
// tests through it:
//
//	go run ./testing/testprogress -race -count=1 ./...
//
// go test prints each package's results in the order of the packages, so
// a slow package holds back the lines of those after it; the "still
// running" lines say which test it is waiting for.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Thresholds for the lines that are not package results.
const (
	// slowTest is how long a top-level test must take to get a line of
	// its own when it passes.
	slowTest = 10 * time.Second
	// quiet is how long without a line before a "still running" line.
	quiet = 30 * time.Second
)

func main() {
	os.Exit(run("", os.Args[1:], os.Stdout, os.Stderr))
}

// run runs go test -json with args in dir ("" for the current directory),
// prints its progress to stdout and passes its standard error on to
// stderr. It returns the exit code.
func run(dir string, args []string, stdout, stderr io.Writer) int {
	gocmd := os.Getenv("GO") // as make passes it; else the go on PATH
	if gocmd == "" {
		gocmd = "go"
	}
	cmd := exec.Command(gocmd, append([]string{"test", "-json"}, args...)...)
	cmd.Dir, cmd.Stderr = dir, stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "testprogress:", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "testprogress:", err)
		return 1
	}
	p := newPrinter(stdout)
	stop := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		t := time.NewTicker(quiet / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				p.tick(now)
			}
		}
	}()
	p.read(out)
	close(stop)
	<-ticked
	err = cmd.Wait()
	p.summary()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode()
	case err != nil:
		fmt.Fprintln(stderr, "testprogress:", err)
		return 1
	case p.failed > 0:
		// go test exits non-zero when a package fails; this only
		// guards against a stream that says otherwise.
		return 1
	}
	return 0
}

// event is one line of "go test -json" (see "go doc test2json").
type event struct {
	Action     string
	Package    string
	ImportPath string // of a build-output event
	Test       string
	Elapsed    float64 // seconds
	Output     string
}

// printer turns the events into lines. Its methods are safe for
// concurrent use (read and tick run in different goroutines).
type printer struct {
	mu   sync.Mutex
	w    io.Writer
	last time.Time // when the last line was printed
	// output holds each package's output lines in order, until their
	// test passes (dropped) or fails (printed).
	output  map[string][]outLine
	running map[string]map[string]time.Time // started tests, by package
	passed  int                             // packages
	failed  int
	skipped int // packages without tests
}

func newPrinter(w io.Writer) *printer {
	return &printer{w: w, last: time.Now(), output: map[string][]outLine{}, running: map[string]map[string]time.Time{}}
}

// outLine is a line of output and the test that printed it ("" for the
// package itself).
type outLine struct{ test, text string }

// of reports whether l was printed by test or one of its subtests.
func (l outLine) of(test string) bool { return l.test == test || strings.HasPrefix(l.test, test+"/") }

// read handles the events in r until it ends. A line that is not an event
// (which go test -json does not write, but a crashing tool may) is
// printed as it is.
func (p *printer) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			p.line("%s", sc.Text())
			continue
		}
		p.event(e)
	}
}

func (p *printer) event(e event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Action == "build-output" {
		// Compiler errors, printed as they come; the package's
		// "[build failed]" line follows.
		fmt.Fprint(p.w, e.Output)
		p.last = time.Now()
		return
	}
	if e.Package == "" {
		return
	}
	pkg := e.Package
	switch e.Action {
	case "run":
		if p.running[pkg] == nil {
			p.running[pkg] = map[string]time.Time{}
		}
		p.running[pkg][e.Test] = time.Now()
	case "output":
		p.output[pkg] = append(p.output[pkg], outLine{e.Test, e.Output})
	case "pass", "fail", "skip":
		if e.Test != "" {
			p.testDone(e)
			return
		}
		p.packageDone(e)
	}
}

// testDone handles the end of a test: its output is printed if it failed,
// a line if it was a slow top-level test.
func (p *printer) testDone(e event) {
	delete(p.running[e.Package], e.Test)
	took := time.Duration(e.Elapsed * float64(time.Second))
	switch {
	case e.Action == "fail":
		// Subtests' output is printed with their parent's, once.
		if !strings.Contains(e.Test, "/") {
			p.printOutput(e.Package, e.Test)
		}
	case !strings.Contains(e.Test, "/") && took >= slowTest:
		p.lineLocked("       %s %s %s", e.Package, e.Test, took.Round(100*time.Millisecond))
	}
	if !strings.Contains(e.Test, "/") {
		p.output[e.Package] = slices.DeleteFunc(p.output[e.Package], func(l outLine) bool { return l.of(e.Test) })
	}
}

// printOutput prints the output of test and its subtests, in order.
func (p *printer) printOutput(pkg, test string) {
	for _, l := range p.output[pkg] {
		if l.of(test) {
			fmt.Fprint(p.w, l.text)
		}
	}
	p.last = time.Now()
}

// packageDone prints the package's line, with what it printed outside its
// tests (a build failure, a panic in TestMain) if it failed.
func (p *printer) packageDone(e event) {
	took := time.Duration(e.Elapsed * float64(time.Second)).Round(10 * time.Millisecond)
	switch e.Action {
	case "pass":
		p.passed++
		p.lineLocked("ok     %s %s", e.Package, took)
	case "skip":
		p.skipped++
		p.lineLocked("?      %s [no test files]", e.Package)
	case "fail":
		// What is left is the package's own output (a panic in
		// TestMain, a leak report), less go test's summary lines,
		// which the line below replaces.
		p.failed++
		for _, l := range p.output[e.Package] {
			if t := strings.TrimSpace(l.text); t != "FAIL" && !strings.HasPrefix(t, "FAIL\t"+e.Package) {
				fmt.Fprint(p.w, l.text)
			}
		}
		p.lineLocked("FAIL   %s %s", e.Package, took)
	}
	delete(p.output, e.Package)
	delete(p.running, e.Package)
}

// tick prints what is still running when nothing was printed for quiet.
func (p *printer) tick(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.last) < quiet {
		return
	}
	var parts []string
	for pkg, tests := range p.running {
		for test, since := range tests {
			if !strings.Contains(test, "/") {
				parts = append(parts, fmt.Sprintf("%s %s (%s)", pkg, test, now.Sub(since).Round(time.Second)))
			}
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		p.lineLocked("...    building and running; no results yet")
		return
	}
	p.lineLocked("...    still running: %s", strings.Join(parts, ", "))
}

func (p *printer) summary() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lineLocked("%d packages passed, %d failed, %d without tests", p.passed, p.failed, p.skipped)
}

func (p *printer) line(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lineLocked(format, args...)
}

// lineLocked prints one line. p.mu held.
func (p *printer) lineLocked(format string, args ...any) {
	fmt.Fprintf(p.w, format+"\n", args...)
	p.last = time.Now()
}
