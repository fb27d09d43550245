package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

var all = []rpc.Status{
	rpc.StatusNoSuchHandle, rpc.StatusForbidden, rpc.StatusHandlerError, rpc.StatusHandlerCrashed,
	rpc.StatusUnavailable, rpc.StatusOverloaded, rpc.StatusDeadlineExceeded, rpc.StatusTooLarge,
	rpc.StatusNotConnected, rpc.StatusConnLost, rpc.StatusCanceled, rpc.StatusBadRequest, rpc.StatusNotTrusted,
}

// TestVocabulary checks that every status has one name and one error, that
// the network's statuses keep their wire values and names, and that an
// error of any shape maps back to its status.
func TestVocabulary(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range all {
		name := s.String()
		if seen[name] || !s.Known() {
			t.Errorf("status %d: name %q repeated or unknown", s, name)
		}
		seen[name] = true
		if w, ok := s.Wire(); ok && w.String() != name {
			t.Errorf("status %s is %s on the wire", s, w)
		}
		for _, err := range []error{
			s.Err(),
			fmt.Errorf("%w: why", s.Err()),
			fmt.Errorf("doing it: %w", &rpc.Error{Status: s, Message: "why", Handle: "h"}),
			rpc.Errorf(s, "why"),
		} {
			if got := rpc.StatusOf(err); got != s {
				t.Errorf("StatusOf(%v) = %s, want %s", err, got, s)
			}
			if !errors.Is(err, s.Err()) {
				t.Errorf("%v does not match %v", err, s.Err())
			}
		}
		if st, msg := rpc.Split(fmt.Errorf("%w: why", s.Err())); st != s || msg != "why" {
			t.Errorf("Split of a wrapped %s = %s, %q; want the status once and %q", s, st, msg, "why")
		}
		if st, msg := rpc.Split(s.Err()); st != s || msg != "" {
			t.Errorf("Split(%s) = %s, %q", s, st, msg)
		}
	}
	for w := wire.StatusOK; w <= wire.StatusTooLarge; w++ {
		if s := rpc.Status(w); s.String() != w.String() {
			t.Errorf("wire status %s is %s", w, s)
		}
	}
	if _, ok := rpc.StatusNotConnected.Wire(); ok {
		t.Error("not_connected goes on the wire")
	}
	if rpc.StatusOf(nil) != rpc.StatusOK || rpc.StatusOf(errors.New("x")) != rpc.StatusHandlerError {
		t.Error("nil or a plain error maps wrongly")
	}
	if rpc.StatusOf(fmt.Errorf("x: %w", context.DeadlineExceeded)) != rpc.StatusDeadlineExceeded {
		t.Error("a wrapped deadline is not deadline_exceeded")
	}
}

// TestOutcome checks what a caller receives for a handler's error: the
// status the handler chose, with its message once; a failed call the
// handler made is the handler's own error.
func TestOutcome(t *testing.T) {
	peer := trust.MustParsePeerID("pn1byhraeiscmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha")
	nested := &rpc.Error{Status: rpc.StatusForbidden, Message: "not you", Peer: peer, Handle: "kv.put"}
	for _, tt := range []struct {
		err  error
		st   rpc.Status
		text string
	}{
		{errors.New("disk on fire"), rpc.StatusHandlerError, "disk on fire"},
		{fmt.Errorf("%w: plugin is restarting", rpc.ErrUnavailable), rpc.StatusUnavailable, "plugin is restarting"},
		{rpc.Errorf(rpc.StatusOverloaded, "busy"), rpc.StatusOverloaded, "busy"},
		{rpc.ErrForbidden, rpc.StatusForbidden, ""},
		{nested, rpc.StatusHandlerError, "call kv.put on " + peer.Short() + ": forbidden: not you"},
	} {
		st, text := rpc.Outcome(context.Background(), tt.err)
		if st != tt.st || text != tt.text {
			t.Errorf("Outcome(%v) = %s, %q; want %s, %q", tt.err, st, text, tt.st, tt.text)
		}
	}
	// A handler's own error after its deadline passed is the deadline's.
	done, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	if st, text := rpc.Outcome(done, errors.New("gave up")); st != rpc.StatusDeadlineExceeded || text != "gave up" {
		t.Errorf("Outcome after the deadline = %s, %q; want deadline_exceeded, %q", st, text, "gave up")
	}
	if st, _ := rpc.Outcome(done, rpc.ErrForbidden); st != rpc.StatusForbidden {
		t.Errorf("Outcome of a chosen status after the deadline = %s, want forbidden", st)
	}
	if got := nested.Error(); got != "call kv.put on "+peer.Short()+": forbidden: not you" {
		t.Errorf("Error() = %q", got)
	}
}

// TestPluginDocStatuses checks the status codes docs/plugin-protocol.md
// gives plugin authors in other languages against the vocabulary.
func TestPluginDocStatuses(t *testing.T) {
	doc, err := os.ReadFile("../docs/plugin-protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## 9. Statuses")
	if !ok {
		t.Fatal("docs/plugin-protocol.md has no Statuses section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	pairs := regexp.MustCompile("(?m)^\\| (\\d+) \\| `([a-z_]+)`").FindAllStringSubmatch(section, -1)
	seen := map[rpc.Status]bool{}
	for _, p := range pairs {
		n, _ := strconv.Atoi(p[1])
		if got := rpc.Status(n).String(); got != p[2] {
			t.Errorf("docs say %s is %s; it is %s", p[1], p[2], got)
		}
		seen[rpc.Status(n)] = true
	}
	for _, s := range append([]rpc.Status{rpc.StatusOK}, all...) {
		if !seen[s] {
			t.Errorf("docs/plugin-protocol.md does not list status %d (%s)", s, s)
		}
	}
}
