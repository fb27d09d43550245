package trust

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// openTestList opens a list in a fresh directory with a fixed clock.
func openTestList(tb testing.TB) *List {
	tb.Helper()
	l, err := OpenList(filepath.Join(tb.TempDir(), TrustFileName))
	if err != nil {
		tb.Fatal(err)
	}
	l.now = func() time.Time { return time.Date(2025, 3, 4, 5, 6, 7, 890, time.FixedZone("x", 3600)) }
	return l
}

func reopen(tb testing.TB, l *List) *List {
	tb.Helper()
	back, err := OpenList(l.path)
	if err != nil {
		tb.Fatalf("reopening: %v", err)
	}
	return back
}

func mustAdd(tb testing.TB, l *List, id PeerID, label string) {
	tb.Helper()
	if _, err := l.Add(id, label); err != nil {
		tb.Fatalf("Add(%v, %q): %v", id, label, err)
	}
}

func TestListAddIdempotent(t *testing.T) {
	a := testPeerID(t, 1)
	at := time.Date(2025, 3, 4, 4, 6, 7, 0, time.UTC) // openTestList's clock, UTC, whole seconds
	tests := []struct {
		name      string
		label     string
		wantAdded bool
		wantLabel string
	}{
		{"first add", "laptop", true, "laptop"},
		{"same label", "laptop", false, "laptop"},
		{"empty label keeps old", "", false, "laptop"},
		{"new label replaces", "desk", false, "desk"},
	}
	l := openTestList(t)
	for _, tt := range tests {
		// Steps share the list: each one depends on the previous.
		added, err := l.Add(a, tt.label)
		if err != nil || added != tt.wantAdded {
			t.Fatalf("%s: Add = %v, %v; want %v", tt.name, added, err, tt.wantAdded)
		}
		for _, ll := range []*List{l, reopen(t, l)} {
			e, ok := ll.Get(a)
			if !ok || e.Label != tt.wantLabel || !e.AddedAt.Equal(at) || e.AddedAt.Location() != time.UTC {
				t.Fatalf("%s: Get = %+v, %v; want label %q added %v UTC", tt.name, e, ok, tt.wantLabel, at)
			}
		}
		l.now = func() time.Time { return at.Add(time.Hour) } // must not be used again
	}
}

func TestListRemove(t *testing.T) {
	a, b := testPeerID(t, 1), testPeerID(t, 2)
	l := openTestList(t)
	if removed, err := l.Remove(a); err != nil || removed {
		t.Fatalf("Remove from empty list = %v, %v", removed, err)
	}
	if _, err := os.Stat(l.path); !os.IsNotExist(err) {
		t.Errorf("no-op Remove created the file: %v", err)
	}
	mustAdd(t, l, a, "a")
	mustAdd(t, l, b, "b")
	tests := []struct {
		id          PeerID
		wantRemoved bool
	}{{a, true}, {a, false}, {b, true}}
	for i, tt := range tests {
		removed, err := l.Remove(tt.id)
		if err != nil || removed != tt.wantRemoved {
			t.Fatalf("step %d: Remove = %v, %v; want %v", i, removed, err, tt.wantRemoved)
		}
		if l.Contains(tt.id) || reopen(t, l).Contains(tt.id) {
			t.Fatalf("step %d: %v still trusted", i, tt.id)
		}
	}
	if got := reopen(t, l).List(); len(got) != 0 {
		t.Errorf("after removing all: %v", got)
	}
}

func TestListPersistenceAndOrder(t *testing.T) {
	l := openTestList(t)
	ids := make([]PeerID, 6)
	for i := range ids {
		ids[i] = testPeerID(t, byte(i+10))
	}
	labels := []string{"zeta", "alpha", "", "alpha", "Zoë's laptop <home> & \"x\"", "mid"}
	for i, id := range ids {
		l.now = func() time.Time { return time.Unix(1700000000+int64(i), 0) }
		mustAdd(t, l, id, labels[i])
	}
	got := l.List()
	if len(got) != len(ids) {
		t.Fatalf("List has %d entries, want %d", len(got), len(ids))
	}
	sorted := slices.IsSortedFunc(got, func(a, b Entry) int {
		if c := strings.Compare(a.Label, b.Label); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
	if !sorted {
		t.Errorf("List not sorted by label then id: %v", got)
	}
	if !slices.EqualFunc(got, reopen(t, l).List(), entriesEqual) {
		t.Errorf("reopened list differs:\n%v\n%v", got, reopen(t, l).List())
	}

	got[0].Label = "changed by caller"
	if l.List()[0].Label == "changed by caller" {
		t.Error("List returned the list's own memory")
	}

	fi, err := os.Stat(l.path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("trust file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	data, _ := os.ReadFile(l.path)
	for _, want := range []string{`"version": 1`, `"peers": [`, `"added_at": "2023-11-14T22:13:20Z"`, `<home> & \"x\"`, `"id": "` + ids[0].String() + `"`} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("trust file lacks %s:\n%s", want, data)
		}
	}
	assertNoTemps(t, filepath.Dir(l.path))
}

func entriesEqual(a, b Entry) bool {
	return a.ID == b.ID && a.Label == b.Label && a.AddedAt.Equal(b.AddedAt)
}

func TestListBadInput(t *testing.T) {
	l := openTestList(t)
	a := testPeerID(t, 1)
	tests := []struct {
		name  string
		id    PeerID
		label string
		want  error
	}{
		{"zero id", PeerID{}, "x", ErrBadPeerID},
		{"label too long", a, strings.Repeat("é", MaxLabelLen+1), ErrBadLabel},
		{"newline", a, "a\nb", ErrBadLabel},
		{"tab", a, "a\tb", ErrBadLabel},
		{"escape", a, "a\x1b[31m", ErrBadLabel},
		{"bidi override", a, "a\u202eb", ErrBadLabel},
		{"invalid utf-8", a, "a\xffb", ErrBadLabel},
		{"leading space", a, " a", ErrBadLabel},
		{"trailing space", a, "a ", ErrBadLabel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if added, err := l.Add(tt.id, tt.label); !errors.Is(err, tt.want) || added {
				t.Fatalf("Add = %v, %v; want %v", added, err, tt.want)
			}
			if len(l.List()) != 0 {
				t.Fatal("a refused Add changed the list")
			}
		})
	}
	for _, ok := range []string{"", "a", strings.Repeat("é", MaxLabelLen), "Zoë's laptop (2nd)", "日本語"} {
		if err := ValidateLabel(ok); err != nil {
			t.Errorf("ValidateLabel(%q) = %v", ok, err)
		}
	}
}

func TestOpenListCorrupt(t *testing.T) {
	a, b := testPeerID(t, 1), testPeerID(t, 2)
	entry := func(id PeerID) string {
		return `{"id": "` + id.String() + `", "label": "x", "added_at": "2025-01-02T03:04:05Z"}`
	}
	file := func(peers ...string) string {
		return "{\n  \"version\": 1,\n  \"peers\": [\n    " + strings.Join(peers, ",\n    ") + "\n  ]\n}\n"
	}
	typo := []byte(a.String())
	typo[30] ^= 1
	tests := []struct {
		name string
		data string
		want []string // all must appear in the error
	}{
		{"empty", "", []string{"empty file"}},
		{"spaces", "  \n", []string{"empty file"}},
		{"not json", "peers = []\n", []string{"line 1, column 1", "invalid character"}},
		{"truncated", file(entry(a))[:40], []string{"unexpected end of JSON input"}},
		{"array", "[]", []string{"want a JSON object"}},
		{"null", "null", []string{`no "version"`}},
		{"no version", `{"peers": []}`, []string{`no "version"`}},
		{"newer version", `{"version": 2, "peers": [{"whatever": 1}]}`, []string{"version 2, written by a newer PeerNet"}},
		{"version 0", `{"version": 0, "peers": []}`, []string{"unknown version 0"}},
		{"version string", `{"version": "1", "peers": []}`, []string{`"version" is "1"`}},
		{"version twice", "{\"version\": 1,\n\"version\": 1, \"peers\": []}", []string{`line 2: field "version" appears twice`}},
		{"no peers", `{"version": 1}`, []string{`no "peers"`}},
		{"peers null", `{"version": 1, "peers": null}`, []string{`want "["`}},
		{"unknown top field", "{\"version\": 1,\n\"peers\": [],\n\"extra\": 1}", []string{`line 3: unknown field "extra"`}},
		{"trailing data", file(entry(a)) + "{}", []string{"line 7, column 1", "after top-level value"}},
		{"duplicate id", file(entry(a), entry(b), entry(a)), []string{"entry 3 (line 6)", "already entry 1"}},
		{"bad id", file(entry(a), strings.Replace(entry(b), b.String(), string(typo), 1)), []string{"entry 2 (line 5)", "checksum mismatch"}},
		{"missing id", file(`{"label": "x", "added_at": "2025-01-02T03:04:05Z"}`), []string{"entry 1 (line 4)", `missing "id"`}},
		{"id number", file(`{"id": 5, "added_at": "2025-01-02T03:04:05Z"}`), []string{"entry 1 (line 4)", `"id": want a string`}},
		{"entry not object", file(entry(a), `"x"`), []string{"entry 2 (line 5)", "want an object"}},
		{"entry null", file(`null`), []string{"entry 1 (line 4)", "not null"}},
		{"unknown entry field", file(strings.Replace(entry(a), `"label"`, `"lable"`, 1)), []string{"entry 1 (line 4)", `unknown field "lable"`}},
		{"bad label", file(strings.Replace(entry(a), `"x"`, `"a\tb"`, 1)), []string{"entry 1 (line 4)", "unprintable"}},
		{"missing time", file(`{"id": "` + a.String() + `"}`), []string{"entry 1 (line 4)", `missing "added_at"`}},
		{"bad time", file(strings.Replace(entry(a), "2025-01-02T03:04:05Z", "yesterday", 1)), []string{"entry 1 (line 4)", "not an RFC 3339 time"}},
		{"time out of range", file(strings.Replace(entry(a), "2025-01-02T03:04:05Z", "0001-01-01T00:00:00+01:00", 1)), []string{"out of range"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), TrustFileName)
			if err := os.WriteFile(path, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := OpenList(path)
			if !errors.Is(err, ErrBadTrustFile) {
				t.Fatalf("OpenList = %v, %v; want ErrBadTrustFile", l, err)
			}
			for _, want := range append(tt.want, path) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}

	// The file that the table's helpers build must itself be valid, or the
	// cases above prove nothing.
	if _, err := decodeTrustFile([]byte(file(entry(a), entry(b)))); err != nil {
		t.Fatalf("valid file refused: %v", err)
	}
}

func TestOpenListTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), TrustFileName)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse file: refused on its size, before any of it is read.
	if err := f.Truncate(maxTrustFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := OpenList(path); !errors.Is(err, ErrBadTrustFile) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("OpenList = %v; want ErrBadTrustFile over the limit", err)
	}
}

func TestListWriteFailureLeavesStateUnchanged(t *testing.T) {
	a, b := testPeerID(t, 1), testPeerID(t, 2)
	l := openTestList(t)
	mustAdd(t, l, a, "a")
	before, _ := os.ReadFile(l.path)
	boom := errors.New("disk on fire")
	l.beforeRename = func() error { return boom }

	ops := []struct {
		name string
		op   func() (bool, error)
	}{
		{"add new", func() (bool, error) { return l.Add(b, "b") }},
		{"relabel", func() (bool, error) { return l.Add(a, "renamed") }},
		{"remove", func() (bool, error) { return l.Remove(a) }},
	}
	for _, tt := range ops {
		changed, err := tt.op()
		if !errors.Is(err, boom) || changed {
			t.Fatalf("%s: = %v, %v; want the write error", tt.name, changed, err)
		}
		if e, ok := l.Get(a); !ok || e.Label != "a" || l.Contains(b) {
			t.Fatalf("%s: memory changed after a failed write: %v", tt.name, l.List())
		}
		if after, _ := os.ReadFile(l.path); !bytes.Equal(before, after) {
			t.Fatalf("%s: file changed after a failed write", tt.name)
		}
		assertNoTemps(t, filepath.Dir(l.path))
	}
}

// TestListCrashBeforeRename stands in for a crash after the temporary file
// is written but before it is renamed into place.
func TestListCrashBeforeRename(t *testing.T) {
	a, b := testPeerID(t, 1), testPeerID(t, 2)
	l := openTestList(t)
	mustAdd(t, l, a, "a")
	old := l.List()

	newer := append(l.List(), Entry{ID: b, Label: "b", AddedAt: time.Unix(0, 0).UTC()})
	tmp, err := writeTemp(l.path, encodeTrustFile(newer))
	if err != nil {
		t.Fatal(err)
	}
	// Also a torn temporary file, as if the crash came mid-write.
	torn, err := writeTemp(l.path, encodeTrustFile(newer)[:30])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("temporary file not left behind: %v", err)
	}

	back := reopen(t, l)
	if got := back.List(); !slices.EqualFunc(got, old, entriesEqual) {
		t.Errorf("after the crash: %v, want the old list %v", got, old)
	}
	for _, p := range []string{tmp, torn} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("stray temporary file %s not cleaned on open: %v", p, err)
		}
	}
	mustAdd(t, back, b, "b")
	if !reopen(t, back).Contains(b) {
		t.Error("list not writable after recovery")
	}
}

func TestListConcurrent(t *testing.T) {
	l := openTestList(t)
	const workers, rounds = 4, 10
	ids := make([]PeerID, workers*2)
	for i := range ids {
		ids[i] = testPeerID(t, byte(i+1))
	}
	var adds, removes sync.Map
	l.OnAdd(func(id PeerID) { adds.Store(id, true) })
	l.OnRemove(func(id PeerID) { removes.Store(id, true) })

	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*4)
	for w := range workers {
		wg.Go(func() {
			mine, shared := ids[w], ids[workers+w%2]
			for r := range rounds {
				for _, op := range []func() error{
					func() error { _, err := l.Add(mine, fmt.Sprintf("w%d r%d", w, r)); return err },
					func() error { _, err := l.Add(shared, "shared"); return err },
					func() error { _, err := l.Remove(shared); return err },
					func() error { _, err := l.Remove(mine); return err },
				} {
					if err := op(); err != nil {
						errs <- err
					}
					l.Contains(shared)
					l.Get(mine)
					_ = l.List()
				}
			}
			_, err := l.Add(mine, "final")
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := l.List()
	if !slices.EqualFunc(got, reopen(t, l).List(), entriesEqual) {
		t.Fatalf("memory and disk diverged:\n%v\n%v", got, reopen(t, l).List())
	}
	for _, id := range ids[:workers] {
		if e, ok := l.Get(id); !ok || e.Label != "final" {
			t.Errorf("%v: %+v, %v; want label final", id, e, ok)
		}
		if _, ok := adds.Load(id); !ok {
			t.Errorf("OnAdd never saw %v", id)
		}
		if _, ok := removes.Load(id); !ok {
			t.Errorf("OnRemove never saw %v", id)
		}
	}
	assertNoTemps(t, filepath.Dir(l.path))
}

func TestListSubscribers(t *testing.T) {
	a, b := testPeerID(t, 1), testPeerID(t, 2)
	l := openTestList(t)
	var events []string
	var onDisk []bool
	cancelRemove := l.OnRemove(func(id PeerID) {
		// Persisted before the callback, and the list may be re-entered.
		onDisk = append(onDisk, reopen(t, l).Contains(id))
		events = append(events, "remove "+id.Short()+fmt.Sprint(l.Contains(id)))
		if id == a {
			mustAdd(t, l, b, "re-entrant")
		}
	})
	cancelAdd := l.OnAdd(func(id PeerID) {
		onDisk = append(onDisk, reopen(t, l).Contains(id))
		events = append(events, "add "+id.Short())
	})

	mustAdd(t, l, a, "a")
	mustAdd(t, l, a, "relabel") // not an add
	if _, err := l.Remove(a); err != nil {
		t.Fatal(err)
	}
	cancelRemove()
	cancelRemove() // idempotent
	if _, err := l.Remove(b); err != nil {
		t.Fatal(err)
	}
	cancelAdd()
	mustAdd(t, l, a, "after cancel")

	want := []string{"add " + a.Short(), "remove " + a.Short() + "false", "add " + b.Short()}
	if !slices.Equal(events, want) {
		t.Errorf("events:\n%q\nwant\n%q", events, want)
	}
	if !slices.Equal(onDisk, []bool{true, false, true}) {
		t.Errorf("state on disk seen by callbacks: %v, want [true false true]", onDisk)
	}
}

func FuzzTrustFile(f *testing.F) {
	a, b := testPeerID(f, 1), testPeerID(f, 2)
	valid := encodeTrustFile([]Entry{
		{ID: a, Label: "alpha", AddedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)},
		{ID: b, AddedAt: time.Date(2024, 6, 7, 8, 9, 10, 123000000, time.UTC)},
	})
	for _, s := range []string{string(valid), `{"version":1,"peers":[]}`, `{"peers":[],"version":1}`, "",
		`{"version":2}`, string(valid[:len(valid)/2]), `{"version":1,"peers":[null]}`,
		`{"version":1,"peers":[{"id":"` + a.String() + `","added_at":"2025-01-02T03:04:05+14:00"}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := decodeTrustFile(data)
		if err != nil {
			if !errors.Is(err, ErrBadTrustFile) {
				t.Fatalf("error not ErrBadTrustFile: %v", err)
			}
			return
		}
		again, err := decodeTrustFile(encodeTrustFile(entries))
		if err != nil {
			t.Fatalf("re-encoded file refused: %v", err)
		}
		if !slices.EqualFunc(entries, again, entriesEqual) {
			t.Fatalf("round trip changed entries:\n%v\n%v", entries, again)
		}
	})
}
