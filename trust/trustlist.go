package trust

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// TrustFileName is the trust list's file name inside a data directory.
const TrustFileName = "trust.json"

// MaxLabelLen is the longest label, in characters (Unicode code points).
const MaxLabelLen = 64

// Trust file format, version 1: see OpenList.
const (
	trustFileVersion = 1
	maxTrustFileSize = 16 << 20
)

// Entry is one trusted peer.
type Entry struct {
	ID      PeerID    `json:"id"`
	Label   string    `json:"label"`    // for humans; may be empty
	AddedAt time.Time `json:"added_at"` // UTC, whole seconds
}

// List is the set of trusted peers, persisted in one file. Create it with
// OpenList. All methods are safe for concurrent use. Reads (Contains, Get,
// List) never wait for the disk; changes (Add, Remove) are serialized and
// return only once they are durable on disk.
type List struct {
	path string

	// writeMu serializes changes and is held across the file write; only a
	// holder of writeMu modifies entries, and it also takes mu to do so.
	writeMu sync.Mutex
	mu      sync.RWMutex
	entries map[PeerID]Entry

	subMu    sync.Mutex
	nextSub  uint64
	onAdd    []subscriber
	onRemove []subscriber

	// Test hooks.
	now          func() time.Time
	beforeRename func() error // between writing the temporary file and renaming it
}

type subscriber struct {
	n  uint64
	fn func(PeerID)
}

// OpenList loads the trust list persisted at path. The file format, version
// 1, is a JSON object, mode 0600:
//
//	{
//	  "version": 1,
//	  "peers": [
//	    {"id": "pn1…", "label": "laptop", "added_at": "2025-01-02T15:04:05Z"}
//	  ]
//	}
//
// "version" and "peers" are required; "id" is a PeerID's canonical text,
// "label" a string valid for ValidateLabel (may be empty or absent), and
// "added_at" an RFC 3339 time. Unknown fields, duplicate ids and any other
// version are refused, never skipped. Files over 16 MiB are refused before
// they are read. Peers are written in List order.
//
// A missing file is an
// empty list (the file is created by the first change); a file that is
// not a regular file, empty, corrupt, too large or of another version is an
// error matching ErrBadTrustFile that names path and the entry or line at
// fault, never an empty list. A symbolic link, a file owned by another uid
// than this process's, or one writable by group or others is refused with
// ErrUnsafeDataDir and the fix. OpenList never blocks on a FIFO. Only one List per file may exist at a time, and the caller
// should hold the data-directory lock (LockDir): OpenList removes temporary
// files a crash left behind.
func OpenList(path string) (*List, error) {
	l := &List{path: path, entries: make(map[PeerID]Entry), now: time.Now}
	removeStrayTemps(path)
	f, fi, err := openDataFile(path, os.O_RDONLY, ErrBadTrustFile)
	if isNotExist(err) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening trust list %s: %w", path, err)
	}
	defer f.Close()
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return nil, fmt.Errorf("opening trust list %s: %w: mode %04o lets group or others change whom this node trusts; fix: chmod 600 %s",
			path, ErrUnsafeDataDir, uint32(perm), path)
	}
	data, err := readFileLimit(f, maxTrustFileSize)
	if err != nil {
		var tl errFileTooLarge
		if errors.As(err, &tl) {
			err = fmt.Errorf("%w: %v", ErrBadTrustFile, tl)
		}
		return nil, fmt.Errorf("opening trust list %s: %w", path, err)
	}
	entries, err := decodeTrustFile(data)
	if err != nil {
		return nil, fmt.Errorf("opening trust list %s: %w", path, err)
	}
	for _, e := range entries {
		l.entries[e.ID] = e
	}
	return l, nil
}

// ValidateLabel reports whether label may be stored: at most MaxLabelLen
// characters, valid UTF-8, printable (no control characters, tabs or line
// breaks) and without leading or trailing spaces. The empty label is valid.
func ValidateLabel(label string) error {
	if !utf8.ValidString(label) {
		return fmt.Errorf("%w: not valid UTF-8", ErrBadLabel)
	}
	if n := utf8.RuneCountInString(label); n > MaxLabelLen {
		return fmt.Errorf("%w: %d characters, the limit is %d", ErrBadLabel, n, MaxLabelLen)
	}
	for i, r := range label {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: unprintable character %U at byte %d", ErrBadLabel, r, i)
		}
	}
	if strings.TrimSpace(label) != label {
		return fmt.Errorf("%w: leading or trailing space", ErrBadLabel)
	}
	return nil
}

// Add trusts id under label and persists the change before returning. It is
// idempotent: for an id already trusted it returns added == false, keeps
// AddedAt, and replaces the label only if label is non-empty and different
// (persisting that too). On error nothing changes, in memory or on disk. When
// an id is newly added, the OnAdd subscribers run before Add returns.
func (l *List) Add(id PeerID, label string) (added bool, err error) {
	if id.IsZero() {
		return false, fmt.Errorf("adding peer: %w: zero peer id", ErrBadPeerID)
	}
	if err := ValidateLabel(label); err != nil {
		return false, fmt.Errorf("adding peer %s: %w", id, err)
	}
	l.writeMu.Lock()
	e, exists := l.entries[id]
	switch {
	case !exists:
		e = Entry{ID: id, Label: label, AddedAt: l.now().UTC().Truncate(time.Second)}
	case label != "" && label != e.Label:
		e.Label = label
	default:
		l.writeMu.Unlock()
		return false, nil
	}
	if err := l.persist(e, PeerID{}); err != nil {
		l.writeMu.Unlock()
		return false, fmt.Errorf("adding peer %s: %w", id, err)
	}
	l.mu.Lock()
	l.entries[id] = e
	l.mu.Unlock()
	l.writeMu.Unlock()
	if !exists {
		l.notify(&l.onAdd, id)
	}
	return !exists, nil
}

// Remove stops trusting id and persists the change before returning;
// removed is false, and nothing is written, if id was not trusted. On error
// nothing changes. The OnRemove subscribers run before Remove returns.
func (l *List) Remove(id PeerID) (removed bool, err error) {
	l.writeMu.Lock()
	if _, ok := l.entries[id]; !ok {
		l.writeMu.Unlock()
		return false, nil
	}
	if err := l.persist(Entry{}, id); err != nil {
		l.writeMu.Unlock()
		return false, fmt.Errorf("removing peer %s: %w", id, err)
	}
	l.mu.Lock()
	delete(l.entries, id)
	l.mu.Unlock()
	l.writeMu.Unlock()
	l.notify(&l.onRemove, id)
	return true, nil
}

// Contains reports whether id is trusted. It never blocks on the disk.
func (l *List) Contains(id PeerID) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.entries[id]
	return ok
}

// Get returns id's entry, if id is trusted.
func (l *List) Get(id PeerID) (Entry, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	e, ok := l.entries[id]
	return e, ok
}

// List returns every entry, sorted by label and then by PeerID text. The
// caller owns the slice.
func (l *List) List() []Entry {
	l.mu.RLock()
	out := make([]Entry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e)
	}
	l.mu.RUnlock()
	sortEntries(out)
	return out
}

// OnAdd registers fn to be called with each newly trusted id, after the
// change is persisted, synchronously in the goroutine that called Add and
// outside the list's locks (fn may call back into the list). A label change
// is not an add. Calls for concurrent changes may run concurrently or out of
// order, so fn should consult the list (Contains) for the current state.
// cancel unregisters fn and is idempotent; a call already under way may
// still complete after it returns.
func (l *List) OnAdd(fn func(PeerID)) (cancel func()) { return l.subscribe(&l.onAdd, fn) }

// OnRemove registers fn to be called with each id that stops being trusted,
// after the removal is persisted, under the same rules as OnAdd. The node
// uses it to close that peer's connections.
func (l *List) OnRemove(fn func(PeerID)) (cancel func()) { return l.subscribe(&l.onRemove, fn) }

func (l *List) subscribe(subs *[]subscriber, fn func(PeerID)) func() {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	l.nextSub++
	n := l.nextSub
	*subs = append(*subs, subscriber{n: n, fn: fn})
	var once sync.Once
	return func() {
		once.Do(func() {
			l.subMu.Lock()
			defer l.subMu.Unlock()
			*subs = slices.DeleteFunc(slices.Clone(*subs), func(s subscriber) bool { return s.n == n })
		})
	}
}

func (l *List) notify(subs *[]subscriber, id PeerID) {
	l.subMu.Lock()
	snapshot := *subs // never modified in place: subscribe appends, cancel clones
	l.subMu.Unlock()
	for _, s := range snapshot {
		s.fn(id)
	}
}

// persist writes the current entries with put added or replaced (unless
// zero) and drop removed (unless zero). The caller holds writeMu.
func (l *List) persist(put Entry, drop PeerID) error {
	entries := make([]Entry, 0, len(l.entries)+1)
	for id, e := range l.entries {
		if id != drop && id != put.ID {
			entries = append(entries, e)
		}
	}
	if !put.ID.IsZero() {
		entries = append(entries, put)
	}
	sortEntries(entries)
	tmp, err := writeTemp(l.path, encodeTrustFile(entries))
	if err != nil {
		return fmt.Errorf("writing trust list %s: %w", l.path, err)
	}
	if l.beforeRename != nil {
		if err := l.beforeRename(); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("writing trust list %s: %w", l.path, err)
		}
	}
	if err := commitTemp(tmp, l.path); err != nil {
		return fmt.Errorf("writing trust list %s: %w", l.path, err)
	}
	return nil
}

// sortEntries orders entries by label, then by PeerID text, which is what a
// human reading `peernet-host trust list` expects.
func sortEntries(entries []Entry) {
	type keyed struct {
		e  Entry
		id string
	}
	ks := make([]keyed, len(entries))
	for i, e := range entries {
		ks[i] = keyed{e, e.ID.String()}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		return cmp.Or(strings.Compare(a.e.Label, b.e.Label), strings.Compare(a.id, b.id))
	})
	for i := range ks {
		entries[i] = ks[i].e
	}
}

// fileEntry is an Entry as stored. Strings, so that decodeTrustFile rather
// than encoding/json words the errors.
type fileEntry struct {
	ID      string `json:"id"`
	Label   string `json:"label,omitempty"`
	AddedAt string `json:"added_at"`
}

type trustFile struct {
	Version int         `json:"version"`
	Peers   []fileEntry `json:"peers"`
}

// encodeTrustFile returns the file contents for entries, in their order.
func encodeTrustFile(entries []Entry) []byte {
	tf := trustFile{Version: trustFileVersion, Peers: make([]fileEntry, len(entries))}
	for i, e := range entries {
		tf.Peers[i] = fileEntry{ID: e.ID.String(), Label: e.Label, AddedAt: e.AddedAt.UTC().Format(time.RFC3339Nano)}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(tf); err != nil {
		panic("trust: encoding trust file: " + err.Error()) // strings and ints only
	}
	return buf.Bytes()
}

// decodeTrustFile parses file contents (format above). Errors match
// ErrBadTrustFile and give the line, or the entry and its line.
func decodeTrustFile(data []byte) ([]Entry, error) {
	if len(data) > maxTrustFileSize {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrBadTrustFile, len(data), maxTrustFileSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: empty file", ErrBadTrustFile)
	}
	// Check the version first, wherever it is in the object, so a newer
	// file is reported as such rather than as unknown fields.
	var head struct {
		Version *json.RawMessage `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, jsonError(data, err)
	}
	if head.Version == nil {
		return nil, fmt.Errorf("%w: no \"version\" field; not a PeerNet trust file", ErrBadTrustFile)
	}
	var ver int
	if err := json.Unmarshal(*head.Version, &ver); err != nil {
		return nil, fmt.Errorf("%w: \"version\" is %s, want a whole number", ErrBadTrustFile, abbreviate(string(*head.Version)))
	}
	switch {
	case ver > trustFileVersion:
		return nil, fmt.Errorf("%w: version %d, written by a newer PeerNet (this one reads version %d); upgrade PeerNet",
			ErrBadTrustFile, ver, trustFileVersion)
	case ver != trustFileVersion:
		return nil, fmt.Errorf("%w: unknown version %d (this PeerNet reads version %d)", ErrBadTrustFile, ver, trustFileVersion)
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := expectDelim(dec, data, '{'); err != nil {
		return nil, err
	}
	var (
		entries  []Entry
		index    = make(map[PeerID]int)
		seen     = make(map[string]bool)
		sawPeers bool
	)
	for dec.More() {
		keyStart := skipJSONSpace(data, dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(data, err)
		}
		key, _ := tok.(string) // dec.Token only returns a string here
		if seen[key] {
			return nil, fmt.Errorf("%w: line %d: field %q appears twice", ErrBadTrustFile, lineAt(data, keyStart), abbreviate(key))
		}
		seen[key] = true
		switch key {
		case "version":
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return nil, jsonError(data, err)
			}
		case "peers":
			sawPeers = true
			if err := expectDelim(dec, data, '['); err != nil {
				return nil, fmt.Errorf("%w (\"peers\" must be an array)", err)
			}
			for n := 1; dec.More(); n++ {
				line := lineAt(data, skipJSONSpace(data, dec.InputOffset()))
				e, err := decodeEntry(dec, data)
				if err != nil {
					return nil, fmt.Errorf("%w: entry %d (line %d): %w", ErrBadTrustFile, n, line, err)
				}
				if first, dup := index[e.ID]; dup {
					return nil, fmt.Errorf("%w: entry %d (line %d): %s is already entry %d",
						ErrBadTrustFile, n, line, e.ID, first)
				}
				index[e.ID] = n
				entries = append(entries, e)
			}
			if err := expectDelim(dec, data, ']'); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: line %d: unknown field %q", ErrBadTrustFile, lineAt(data, keyStart), abbreviate(key))
		}
	}
	if err := expectDelim(dec, data, '}'); err != nil {
		return nil, err
	}
	if off := skipJSONSpace(data, dec.InputOffset()); off < int64(len(data)) {
		return nil, fmt.Errorf("%w: line %d: unexpected data after the end of the JSON object", ErrBadTrustFile, lineAt(data, off))
	}
	if !sawPeers {
		return nil, fmt.Errorf("%w: no \"peers\" field", ErrBadTrustFile)
	}
	return entries, nil
}

// decodeEntry decodes and validates one element of "peers". Its errors are
// not wrapped in ErrBadTrustFile; the caller adds the entry and position.
func decodeEntry(dec *json.Decoder, data []byte) (Entry, error) {
	var fe *fileEntry
	if err := dec.Decode(&fe); err != nil {
		var ute *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &ute) && ute.Field == "":
			return Entry{}, fmt.Errorf("want an object, not a JSON %s", ute.Value)
		case errors.As(err, &ute):
			return Entry{}, fmt.Errorf("%q: want a string, not a JSON %s", ute.Field, ute.Value)
		case errors.As(err, &se):
			line, col := lineColAt(data, se.Offset-1)
			return Entry{}, fmt.Errorf("line %d, column %d: %s", line, col, strings.TrimPrefix(se.Error(), "json: "))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return Entry{}, errors.New("truncated")
		default: // unknown field; encoding/json words it well
			return Entry{}, errors.New(strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	if fe == nil {
		return Entry{}, errors.New("want an object, not null")
	}
	if fe.ID == "" {
		return Entry{}, errors.New(`missing "id"`)
	}
	id, err := ParsePeerID(fe.ID)
	if err != nil {
		return Entry{}, fmt.Errorf(`"id": %w`, err)
	}
	if err := ValidateLabel(fe.Label); err != nil {
		return Entry{}, fmt.Errorf(`"label": %w`, err)
	}
	if fe.AddedAt == "" {
		return Entry{}, errors.New(`missing "added_at"`)
	}
	at, err := time.Parse(time.RFC3339, fe.AddedAt)
	if err != nil {
		return Entry{}, fmt.Errorf(`"added_at": %q is not an RFC 3339 time`, abbreviate(fe.AddedAt))
	}
	// Stored in UTC; an offset may carry year 0000 or 9999 out of range.
	if at = at.UTC(); at.Year() < 1 || at.Year() > 9999 {
		return Entry{}, fmt.Errorf(`"added_at": %q is out of range`, abbreviate(fe.AddedAt))
	}
	return Entry{ID: id, Label: fe.Label, AddedAt: at}, nil
}

// expectDelim reads the next token and checks that it is want.
func expectDelim(dec *json.Decoder, data []byte, want json.Delim) error {
	off := skipJSONSpace(data, dec.InputOffset())
	tok, err := dec.Token()
	if err != nil {
		return jsonError(data, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		line, col := lineColAt(data, off)
		return fmt.Errorf("%w: line %d, column %d: want %q", ErrBadTrustFile, line, col, string(want))
	}
	return nil
}

// jsonError turns an encoding/json error into ErrBadTrustFile with a line
// and column where encoding/json gives an offset.
func jsonError(data []byte, err error) error {
	var se *json.SyntaxError
	var ute *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		// Offset counts the bytes read, including the offending one.
		line, col := lineColAt(data, se.Offset-1)
		return fmt.Errorf("%w: line %d, column %d: %s", ErrBadTrustFile, line, col, strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &ute) && ute.Field == "":
		return fmt.Errorf("%w: want a JSON object, not a JSON %s", ErrBadTrustFile, ute.Value)
	case errors.As(err, &ute):
		line, col := lineColAt(data, ute.Offset)
		return fmt.Errorf("%w: line %d, column %d: %q: wrong type %s", ErrBadTrustFile, line, col, ute.Field, ute.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated", ErrBadTrustFile)
	}
	return fmt.Errorf("%w: %s", ErrBadTrustFile, strings.TrimPrefix(err.Error(), "json: "))
}

// skipJSONSpace returns the offset of the first byte at or after off that is
// neither JSON white space nor a separator, so positions name the token
// itself rather than the end of the previous one.
func skipJSONSpace(data []byte, off int64) int64 {
	for off < int64(len(data)) {
		switch data[off] {
		case ' ', '\t', '\n', '\r', ',', ':':
			off++
		default:
			return off
		}
	}
	return off
}

func lineAt(data []byte, off int64) int {
	line, _ := lineColAt(data, off)
	return line
}

// lineColAt converts a byte offset into a 1-based line and column (in
// bytes).
func lineColAt(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}
