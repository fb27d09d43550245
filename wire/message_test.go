package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unsafe"

	"github.com/peernet/peernet/testing/dochex"
)

func TestTypeString(t *testing.T) {
	tests := []struct {
		t    Type
		want string
	}{
		{TypeCall, "call"},
		{TypeReply, "reply"},
		{TypeSend, "send"},
		{TypeCancel, "cancel"},
		{TypePing, "ping"},
		{TypePong, "pong"},
		{TypeGoaway, "goaway"},
		{0, "Type(0)"},
		{8, "Type(8)"},
		{255, "Type(255)"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(tt.t), got, tt.want)
		}
	}
}

func TestStatusString(t *testing.T) {
	tests := []struct {
		s    Status
		want string
	}{
		{StatusOK, "ok"},
		{StatusNoSuchHandle, "no_such_handle"},
		{StatusForbidden, "forbidden"},
		{StatusHandlerError, "handler_error"},
		{StatusHandlerCrashed, "handler_crashed"},
		{StatusUnavailable, "unavailable"},
		{StatusOverloaded, "overloaded"},
		{StatusDeadlineExceeded, "deadline_exceeded"},
		{StatusTooLarge, "too_large"},
		{9, "Status(9)"},
		{255, "Status(255)"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("Status(%d).String() = %q, want %q", uint8(tt.s), got, tt.want)
		}
	}
	// The codes are fixed by §5.2; the constants must not drift.
	if StatusOK != 0 || StatusTooLarge != 8 {
		t.Errorf("status codes: ok=%d too_large=%d, want 0 and 8", StatusOK, StatusTooLarge)
	}
}

func TestGoawayCodeString(t *testing.T) {
	tests := []struct {
		c    GoawayCode
		want string
	}{
		{GoawayNormal, "normal"},
		{GoawayUntrusted, "untrusted"},
		{GoawayProtocolError, "protocol_error"},
		{GoawayReplaced, "replaced"},
		{4, "GoawayCode(4)"},
		{255, "GoawayCode(255)"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("GoawayCode(%d).String() = %q, want %q", uint8(tt.c), got, tt.want)
		}
	}
}

// roundTripMessages has a message of every type, with every status and
// goaway code, and the boundary values of every field.
func roundTripMessages() []Message {
	msgs := []Message{
		{Type: TypeCall, ID: 1, Handle: "echo", Body: []byte("hi")},
		{Type: TypeCall, ID: math.MaxUint64, Timeout: 1500 * time.Millisecond, Handle: "x"},
		{Type: TypeCall, ID: 7, Timeout: maxTimeout, Handle: strings.Repeat("h", MaxHandleLen), Body: bytes.Repeat([]byte{0xff}, 1000)},
		{Type: TypeCall, ID: 8, Timeout: time.Millisecond, Handle: "héllo/wörld"},
		{Type: TypeSend, Handle: "log", Body: []byte("x")},
		{Type: TypeSend, Handle: strings.Repeat("s", MaxHandleLen)},
		{Type: TypeCancel, ID: 1},
		{Type: TypeCancel, ID: math.MaxUint64},
		{Type: TypePing},
		{Type: TypePing, Opaque: 0x0102030405060708},
		{Type: TypePong, Opaque: math.MaxUint64},
		{Type: TypeReply, ID: 3, Body: retainedSizedBody()},
	}
	for s := StatusOK; s <= StatusTooLarge; s++ {
		msgs = append(msgs,
			Message{Type: TypeReply, ID: uint64(s) + 1, Status: s, Body: []byte(s.String())},
			Message{Type: TypeReply, ID: uint64(s) + 100, Status: s})
	}
	for c := GoawayNormal; c <= GoawayReplaced; c++ {
		msgs = append(msgs,
			Message{Type: TypeGoaway, Code: c, Body: []byte("because " + c.String())},
			Message{Type: TypeGoaway, Code: c})
	}
	return msgs
}

// retainedSizedBody is a body larger than any buffer a Decoder keeps.
func retainedSizedBody() []byte {
	b := make([]byte, retainedBufferMax+1000)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

// equalMessage reports whether two messages have the same fields.
func equalMessage(a, b *Message) bool {
	return a.Type == b.Type && a.ID == b.ID && a.Timeout == b.Timeout &&
		a.Handle == b.Handle && a.Status == b.Status && a.Code == b.Code &&
		bytes.Equal(a.Body, b.Body) && a.Opaque == b.Opaque
}

func describe(m *Message) string {
	body := m.Body
	if len(body) > 16 {
		body = body[:16]
	}
	return fmt.Sprintf("{%v id=%d timeout=%v handle=%.20q status=%v code=%v body[%d]=%x opaque=%#x}",
		m.Type, m.ID, m.Timeout, m.Handle, m.Status, m.Code, len(m.Body), body, m.Opaque)
}

func mustAppend(t testing.TB, dst []byte, m *Message) []byte {
	t.Helper()
	b, err := AppendMessage(dst, m, DefaultMaxMessageSize)
	if err != nil {
		t.Fatalf("AppendMessage(%s): %v", describe(m), err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	for _, want := range roundTripMessages() {
		t.Run(describe(&want), func(t *testing.T) {
			prefix := []byte("prefix")
			b := mustAppend(t, prefix, &want)
			if !bytes.Equal(b[:len(prefix)], prefix) {
				t.Fatalf("AppendMessage changed dst's existing bytes")
			}
			enc := b[len(prefix):]

			// The encoded size follows from the overhead constants.
			var wantLen int
			switch want.Type {
			case TypeCall:
				wantLen = CallOverhead + len(want.Handle) + len(want.Body)
			case TypeReply:
				wantLen = ReplyOverhead + len(want.Body)
			case TypeSend:
				wantLen = SendOverhead + len(want.Handle) + len(want.Body)
			case TypeGoaway:
				wantLen = GoawayOverhead + len(want.Body)
			default:
				wantLen = 9
			}
			if len(enc) != LengthSize+wantLen {
				t.Fatalf("encoded %d bytes, want %d", len(enc), LengthSize+wantLen)
			}

			var got Message
			if err := DecodeMessage(enc, &got, DefaultMaxMessageSize); err != nil {
				t.Fatalf("DecodeMessage: %v", err)
			}
			if !equalMessage(&got, &want) {
				t.Fatalf("DecodeMessage = %s, want %s", describe(&got), describe(&want))
			}

			got = Message{Type: TypePing, ID: 99, Handle: "stale", Body: []byte("stale")}
			d := NewDecoder(bytes.NewReader(enc), DefaultMaxMessageSize)
			if err := d.Decode(&got); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !equalMessage(&got, &want) {
				t.Fatalf("Decode = %s, want %s", describe(&got), describe(&want))
			}
			if err := d.Decode(&got); err != io.EOF {
				t.Fatalf("Decode after the only message = %v, want io.EOF", err)
			}
		})
	}
}

func TestTimeoutEncoding(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want time.Duration // after a round trip
	}{
		{0, 0},
		{time.Nanosecond, time.Millisecond},
		{999 * time.Microsecond, time.Millisecond},
		{time.Millisecond, time.Millisecond},
		{time.Millisecond + time.Nanosecond, 2 * time.Millisecond},
		{1500 * time.Microsecond, 2 * time.Millisecond},
		{5 * time.Second, 5 * time.Second},
		{-time.Nanosecond, time.Millisecond},
		{-time.Hour, time.Millisecond},
		{maxTimeout - time.Millisecond, maxTimeout - time.Millisecond},
		{maxTimeout - time.Nanosecond, maxTimeout},
		{maxTimeout, maxTimeout},
		{maxTimeout + time.Nanosecond, maxTimeout},
		{100 * 24 * time.Hour, maxTimeout},
		{math.MaxInt64, maxTimeout},
	}
	for _, tt := range tests {
		in := Message{Type: TypeCall, ID: 1, Timeout: tt.in, Handle: "h"}
		b := mustAppend(t, nil, &in)
		var got Message
		if err := DecodeMessage(b, &got, 0); err != nil {
			t.Fatalf("timeout %v: DecodeMessage: %v", tt.in, err)
		}
		if got.Timeout != tt.want {
			t.Errorf("timeout %v decodes as %v, want %v", tt.in, got.Timeout, tt.want)
		}
	}
}

func TestAppendMessageInvalid(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want error
	}{
		{"type 0", Message{}, ErrUnknownType},
		{"type 8", Message{Type: 8, ID: 1}, ErrUnknownType},
		{"call id 0", Message{Type: TypeCall, Handle: "h"}, ErrMalformed},
		{"call empty handle", Message{Type: TypeCall, ID: 1}, ErrMalformed},
		{"call long handle", Message{Type: TypeCall, ID: 1, Handle: strings.Repeat("h", MaxHandleLen+1)}, ErrMalformed},
		{"call non-UTF-8 handle", Message{Type: TypeCall, ID: 1, Handle: "h\xff"}, ErrMalformed},
		{"send empty handle", Message{Type: TypeSend}, ErrMalformed},
		{"send long handle", Message{Type: TypeSend, Handle: strings.Repeat("h", 256)}, ErrMalformed},
		{"send non-UTF-8 handle", Message{Type: TypeSend, Handle: "\xc3"}, ErrMalformed},
		{"reply id 0", Message{Type: TypeReply}, ErrMalformed},
		{"reply status 9", Message{Type: TypeReply, ID: 1, Status: 9}, ErrMalformed},
		{"cancel id 0", Message{Type: TypeCancel}, ErrMalformed},
		{"goaway code 4", Message{Type: TypeGoaway, Code: 4}, ErrMalformed},
	}
	for _, tt := range tests {
		dst := []byte("keep")
		got, err := AppendMessage(dst, &tt.m, DefaultMaxMessageSize)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: AppendMessage error = %v, want %v", tt.name, err, tt.want)
		}
		if string(got) != "keep" {
			t.Errorf("%s: AppendMessage returned %q, want dst unchanged", tt.name, got)
		}
	}
}

func TestAppendMessageMaxSize(t *testing.T) {
	const limit = 100
	tests := []struct {
		name string
		m    Message
		ok   bool
	}{
		{"call exactly limit", Message{Type: TypeCall, ID: 1, Handle: "h", Body: make([]byte, limit-CallOverhead-1)}, true},
		{"call one over", Message{Type: TypeCall, ID: 1, Handle: "h", Body: make([]byte, limit-CallOverhead)}, false},
		{"send exactly limit", Message{Type: TypeSend, Handle: "hh", Body: make([]byte, limit-SendOverhead-2)}, true},
		{"send one over", Message{Type: TypeSend, Handle: "hh", Body: make([]byte, limit-SendOverhead-1)}, false},
		{"reply exactly limit", Message{Type: TypeReply, ID: 1, Body: make([]byte, limit-ReplyOverhead)}, true},
		{"reply one over", Message{Type: TypeReply, ID: 1, Body: make([]byte, limit-ReplyOverhead+1)}, false},
		{"goaway exactly limit", Message{Type: TypeGoaway, Body: make([]byte, limit-GoawayOverhead)}, true},
		{"goaway one over", Message{Type: TypeGoaway, Body: make([]byte, limit-GoawayOverhead+1)}, false},
	}
	for _, tt := range tests {
		b, err := AppendMessage(nil, &tt.m, limit)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: AppendMessage: %v", tt.name, err)
		case tt.ok && len(b) != LengthSize+limit:
			t.Errorf("%s: encoded %d bytes, want %d", tt.name, len(b), LengthSize+limit)
		case !tt.ok && !errors.Is(err, ErrMessageTooLarge):
			t.Errorf("%s: AppendMessage error = %v, want ErrMessageTooLarge", tt.name, err)
		case !tt.ok && b != nil:
			t.Errorf("%s: AppendMessage returned %d bytes with its error, want dst unchanged", tt.name, len(b))
		}
		if !tt.ok {
			continue
		}
		// The receiver with the same maximum accepts it; one with a
		// smaller maximum does not.
		var m Message
		if err := DecodeMessage(b, &m, limit); err != nil {
			t.Errorf("%s: DecodeMessage with limit %d: %v", tt.name, limit, err)
		}
		if err := NewDecoder(bytes.NewReader(b), limit-1).Decode(&m); !errors.Is(err, ErrMessageTooLarge) {
			t.Errorf("%s: Decode with limit %d: error %v, want ErrMessageTooLarge", tt.name, limit-1, err)
		}
	}
}

// hexBytes decodes hex with spaces allowed.
func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// withLength prefixes a type + body with its length.
func withLength(body []byte) []byte {
	n := len(body)
	return append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// TestDecodeBadInput feeds every kind of bad input of §5.3 to both decoders.
func TestDecodeBadInput(t *testing.T) {
	tests := []struct {
		name string
		body string // type + body, hex; the length prefix is added
		want error
	}{
		{"type 0", "00", ErrUnknownType},
		{"type 8", "08 0000000000000001", ErrUnknownType},
		{"type 0xff", "ff", ErrUnknownType},
		{"length 0", "", ErrMalformed},

		{"call empty body", "01", ErrMalformed},
		{"call short body", "01 0000000000000001 00000000", ErrMalformed},
		{"call handle length 0", "01 0000000000000001 00000000 00", ErrMalformed},
		{"call handle length 0 with args", "01 0000000000000001 00000000 00 6869", ErrMalformed},
		{"call handle past end", "01 0000000000000001 00000000 05 65636f68", ErrMalformed},
		{"call handle length 255 past end", "01 0000000000000001 00000000 ff 68", ErrMalformed},
		{"call handle not UTF-8", "01 0000000000000001 00000000 02 68ff", ErrMalformed},
		{"call handle truncated UTF-8", "01 0000000000000001 00000000 01 c3 a9", ErrMalformed},
		{"call id 0", "01 0000000000000000 00000000 01 68", ErrMalformed},

		{"reply empty body", "02", ErrMalformed},
		{"reply short body", "02 0000000000000001", ErrMalformed},
		{"reply id 0", "02 0000000000000000 00", ErrMalformed},
		{"reply status 9", "02 0000000000000001 09", ErrMalformed},
		{"reply status 0xff", "02 0000000000000001 ff 6869", ErrMalformed},

		{"send empty body", "03", ErrMalformed},
		{"send handle length 0", "03 00", ErrMalformed},
		{"send handle length 0 with args", "03 00 78", ErrMalformed},
		{"send handle past end", "03 04 6c6f67", ErrMalformed},
		{"send handle not UTF-8", "03 01 80", ErrMalformed},

		{"cancel empty body", "04", ErrMalformed},
		{"cancel short body", "04 00000000000001", ErrMalformed},
		{"cancel trailing byte", "04 0000000000000001 00", ErrMalformed},
		{"cancel id 0", "04 0000000000000000", ErrMalformed},

		{"ping empty body", "05", ErrMalformed},
		{"ping short body", "05 01020304050607", ErrMalformed},
		{"ping trailing bytes", "05 0102030405060708 0900", ErrMalformed},
		{"pong empty body", "06", ErrMalformed},
		{"pong short body", "06 01", ErrMalformed},
		{"pong trailing byte", "06 0102030405060708 09", ErrMalformed},

		{"goaway empty body", "07", ErrMalformed},
		{"goaway code 4", "07 04", ErrMalformed},
		{"goaway code 0xff", "07 ff 627965", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := withLength(hexBytes(t, tt.body))
			m := Message{Type: TypePing, Handle: "stale"}
			err := DecodeMessage(b, &m, DefaultMaxMessageSize)
			if !errors.Is(err, tt.want) {
				t.Errorf("DecodeMessage error = %v, want %v", err, tt.want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "decoding ") {
				t.Errorf("DecodeMessage error %q does not say what it was doing", err)
			}

			// A good message after the bad one must not be reached.
			good := mustAppend(t, nil, &Message{Type: TypePing})
			d := NewDecoder(bytes.NewReader(append(b, good...)), DefaultMaxMessageSize)
			err = d.Decode(&m)
			if !errors.Is(err, tt.want) {
				t.Errorf("Decode error = %v, want %v", err, tt.want)
			}
			if !equalMessage(&m, &Message{}) {
				t.Errorf("Decode left %s in m after an error, want the zero Message", describe(&m))
			}
			if err2 := d.Decode(&m); err2 != err {
				t.Errorf("second Decode error = %v, want the first error %v again", err2, err)
			}
		})
	}
}

// TestDecodeMessageFraming covers what only a whole-buffer decode can get
// wrong: the prefix itself and bytes before or after the message.
func TestDecodeMessageFraming(t *testing.T) {
	ping := mustAppend(t, nil, &Message{Type: TypePing, Opaque: 1})
	tests := []struct {
		name string
		b    []byte
		max  int
		want error
	}{
		{"empty", nil, 0, ErrMalformed},
		{"short prefix", []byte{0, 0, 9}, 0, ErrMalformed},
		{"prefix only", ping[:LengthSize], 0, ErrMalformed},
		{"truncated", ping[:len(ping)-1], 0, ErrMalformed},
		{"trailing byte", append(ping[:len(ping):len(ping)], 0), 0, ErrMalformed},
		{"two messages", append(ping[:len(ping):len(ping)], ping...), 0, ErrMalformed},
		{"over max", ping, 8, ErrMessageTooLarge},
		{"over max, not all there", ping[:6], 8, ErrMessageTooLarge},
		{"over default max", []byte{0x00, 0x40, 0x00, 0x01, 5}, 0, ErrMessageTooLarge},
		{"exactly max", ping, 9, nil},
	}
	for _, tt := range tests {
		var m Message
		if err := DecodeMessage(tt.b, &m, tt.max); !errors.Is(err, tt.want) {
			t.Errorf("%s: DecodeMessage error = %v, want %v", tt.name, err, tt.want)
		}
	}
}

// headerOnlyReader supplies a message header and counts any read past it.
type headerOnlyReader struct {
	hdr        []byte
	extraReads int
}

func (r *headerOnlyReader) Read(p []byte) (int, error) {
	if len(r.hdr) == 0 {
		r.extraReads++
		return 0, errors.New("read past the header")
	}
	n := copy(p, r.hdr)
	r.hdr = r.hdr[n:]
	return n, nil
}

// bytesAllocated reports how many bytes the heap allocated while f ran.
func bytesAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDecoderRejectsOversizeBeforeReading shows that a length over the
// maximum is refused from the header alone: nothing more is read and
// nothing of that size is allocated.
func TestDecoderRejectsOversizeBeforeReading(t *testing.T) {
	const claimed = 1 << 30
	hdr := []byte{0x40, 0, 0, 0} // 1 GiB
	var err error
	var extraReads int
	decodeOnce := func() {
		r := &headerOnlyReader{hdr: hdr}
		var m Message
		err = NewDecoder(r, DefaultMaxMessageSize).Decode(&m)
		extraReads += r.extraReads
	}
	const runs = 100
	allocs := testing.AllocsPerRun(runs, decodeOnce)
	if !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("Decode error = %v, want ErrMessageTooLarge", err)
	}
	for _, want := range []string{fmt.Sprint(claimed), fmt.Sprint(DefaultMaxMessageSize)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if extraReads != 0 {
		t.Errorf("Decode read past the header %d times", extraReads)
	}
	// A handful of small allocations: the Decoder, its handle cache, the
	// error. Not one of them is the body.
	if allocs > 10 {
		t.Errorf("Decode of an oversized header: %v allocations per run, want ≤ 10", allocs)
	}
	if n := bytesAllocated(decodeOnce); n > 64<<10 {
		t.Errorf("Decode of an oversized header allocated %d bytes, want < 64 KiB", n)
	}
}

// TestDecoderLongMessageGrowsWithData shows that a long length within the
// maximum allocates as the body arrives, not what the length claims.
func TestDecoderLongMessageGrowsWithData(t *testing.T) {
	const claimed = 1 << 30
	stream := append([]byte{0x40, 0, 0, 0, byte(TypeReply)}, make([]byte, 10_000)...)
	var err error
	n := bytesAllocated(func() {
		var m Message
		err = NewDecoder(bytes.NewReader(stream), claimed).Decode(&m)
	})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Decode of a truncated 1 GiB message: error %v, want io.ErrUnexpectedEOF", err)
	}
	if n > 4*retainedBufferMax {
		t.Errorf("Decode of a truncated 1 GiB message allocated %d bytes, want ≤ %d", n, 4*retainedBufferMax)
	}
}

func TestDecoderEndOfStream(t *testing.T) {
	msg := mustAppend(t, nil, &Message{Type: TypeCall, ID: 1, Handle: "echo", Body: []byte("hi")})
	long := mustAppend(t, nil, &Message{Type: TypeReply, ID: 1, Body: retainedSizedBody()})
	huge := mustAppend(t, nil, &Message{Type: TypeReply, ID: 1, Body: make([]byte, 3*retainedBufferMax)})
	tests := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"empty stream", nil, io.EOF},
		{"partial length", msg[:3], io.ErrUnexpectedEOF},
		{"length only", msg[:LengthSize], io.ErrUnexpectedEOF},
		{"partial body", msg[:len(msg)-1], io.ErrUnexpectedEOF},
		{"partial long body", long[:len(long)-1], io.ErrUnexpectedEOF},
		{"long body cut at a chunk boundary", huge[:LengthSize+2*retainedBufferMax], io.ErrUnexpectedEOF},
		{"long body cut after a chunk boundary", huge[:LengthSize+2*retainedBufferMax+1], io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		var m Message
		d := NewDecoder(bytes.NewReader(tt.stream), 0)
		err := d.Decode(&m)
		if tt.want == io.EOF && err != io.EOF {
			t.Errorf("%s: Decode error = %v, want io.EOF itself", tt.name, err)
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: Decode error = %v, want %v", tt.name, err, tt.want)
		}
		if err2 := d.Decode(&m); err2 != err {
			t.Errorf("%s: second Decode error = %v, want %v again", tt.name, err2, err)
		}
	}
}

func TestDecoderReadError(t *testing.T) {
	msg := mustAppend(t, nil, &Message{Type: TypePing})
	boom := errors.New("boom")
	for _, cut := range []int{0, 2, LengthSize, len(msg) - 1} {
		r := io.MultiReader(bytes.NewReader(msg[:cut]), iotest.ErrReader(boom))
		var m Message
		d := NewDecoder(r, 0)
		err := d.Decode(&m)
		if !errors.Is(err, boom) {
			t.Errorf("read error after %d bytes: Decode error = %v, want it to wrap %v", cut, err, boom)
		}
		if err2 := d.Decode(&m); err2 != err {
			t.Errorf("read error after %d bytes: second Decode error = %v, want %v again", cut, err2, err)
		}
	}
}

// timeoutReader times out before every other read, as a Conn whose read
// deadline keeps passing would, and otherwise returns data in pieces.
type timeoutReader struct {
	chunkReader
	timeouts int
	tick     bool
}

func (r *timeoutReader) Read(p []byte) (int, error) {
	r.tick = !r.tick
	if r.tick {
		r.timeouts++
		return 0, os.ErrDeadlineExceeded
	}
	return r.chunkReader.Read(p)
}

// TestDecoderResumesAfterTimeout shows that a timeout anywhere in a message
// loses nothing: the next Decode picks up where the last one stopped.
func TestDecoderResumesAfterTimeout(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	want := make([]Message, 300)
	var stream []byte
	for i := range want {
		want[i] = randomMessage(rng)
		stream = mustAppend(t, stream, &want[i])
	}
	r := &timeoutReader{chunkReader: chunkReader{data: stream, rng: rng}}
	d := NewDecoder(r, DefaultMaxMessageSize)
	var got Message
	for i := range want {
		for tries := 0; ; tries++ {
			err := d.Decode(&got)
			if err == nil {
				break
			}
			if tries == 100_000 {
				t.Fatalf("message %d: Decode still failing after %d tries: %v", i, tries, err)
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("message %d: Decode: %v", i, err)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("message %d: Decode error %v is not a net.Error timeout", i, err)
			}
		}
		if !equalMessage(&got, &want[i]) {
			t.Fatalf("message %d: Decode = %s, want %s", i, describe(&got), describe(&want[i]))
		}
	}
	for tries := 0; ; tries++ {
		err := d.Decode(&got)
		if err == io.EOF {
			break
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || tries == 10 {
			t.Fatalf("Decode at the end of the stream = %v, want io.EOF", err)
		}
	}
	if r.timeouts < len(want) {
		t.Fatalf("only %d timeouts for %d messages", r.timeouts, len(want))
	}
}

// chunkReader returns its data in pieces of random sizes, as records would.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), 1+r.rng.IntN(3000))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// randomMessage returns a valid message of a random type.
func randomMessage(rng *rand.Rand) Message {
	handles := []string{"echo", "kv/get", "kv/put", "log", "ünïcode", strings.Repeat("z", MaxHandleLen)}
	body := func() []byte {
		var n int
		switch rng.IntN(10) {
		case 0:
			n = 0
		case 1:
			n = retainedBufferMax + rng.IntN(300_000) // a long message
		default:
			n = rng.IntN(5000)
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	id := func() uint64 { return 1 + rng.Uint64N(math.MaxUint64) }
	switch t := Type(1 + rng.IntN(7)); t {
	case TypeCall:
		return Message{Type: t, ID: id(), Timeout: time.Duration(rng.IntN(1e6)) * time.Millisecond,
			Handle: handles[rng.IntN(len(handles))], Body: body()}
	case TypeReply:
		return Message{Type: t, ID: id(), Status: Status(rng.IntN(9)), Body: body()}
	case TypeSend:
		return Message{Type: t, Handle: handles[rng.IntN(len(handles))], Body: body()}
	case TypeCancel:
		return Message{Type: t, ID: id()}
	case TypeGoaway:
		return Message{Type: t, Code: GoawayCode(rng.IntN(4)), Body: body()}
	default:
		return Message{Type: t, Opaque: rng.Uint64()}
	}
}

func TestDecoderStream(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const count = 2000
	want := make([]Message, count)
	var stream []byte
	for i := range want {
		want[i] = randomMessage(rng)
		stream = mustAppend(t, stream, &want[i])
	}
	d := NewDecoder(&chunkReader{data: stream, rng: rng}, DefaultMaxMessageSize)
	var got Message
	for i := range want {
		if err := d.Decode(&got); err != nil {
			t.Fatalf("message %d: Decode: %v", i, err)
		}
		if !equalMessage(&got, &want[i]) {
			t.Fatalf("message %d: Decode = %s, want %s", i, describe(&got), describe(&want[i]))
		}
		if cap(d.buf) > retainedBufferMax {
			t.Fatalf("message %d: Decoder keeps a %d-byte buffer, want ≤ %d", i, cap(d.buf), retainedBufferMax)
		}
	}
	if err := d.Decode(&got); err != io.EOF {
		t.Fatalf("Decode at the end of the stream = %v, want io.EOF", err)
	}
	if len(d.handles) > handleCacheSize {
		t.Errorf("handle cache has %d entries, want ≤ %d", len(d.handles), handleCacheSize)
	}
}

func TestDecoderBuffers(t *testing.T) {
	small := mustAppend(t, nil, &Message{Type: TypeReply, ID: 1, Body: make([]byte, 100)})
	medium := mustAppend(t, nil, &Message{Type: TypeReply, ID: 2, Body: make([]byte, 64<<10)})
	long := mustAppend(t, nil, &Message{Type: TypeReply, ID: 3, Body: retainedSizedBody()})

	var stream []byte
	for _, b := range [][]byte{small, medium, long, small} {
		stream = append(stream, b...)
	}
	d := NewDecoder(bytes.NewReader(stream), 0)
	var m Message
	steps := []struct {
		id         uint64
		wantCap    int  // of the kept buffer after the step
		wantPooled bool // a borrowed buffer holds the body
	}{
		{1, minBufferSize, false},
		{2, minBufferSize, true},  // a medium body borrows from the pool
		{3, minBufferSize, false}, // the long body gets a buffer of its own
		{1, minBufferSize, false},
	}
	for _, s := range steps {
		if err := d.Decode(&m); err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if m.ID != s.id {
			t.Fatalf("Decode: id %d, want %d", m.ID, s.id)
		}
		if cap(d.buf) != s.wantCap {
			t.Errorf("after message %d: buffer capacity %d, want %d", s.id, cap(d.buf), s.wantCap)
		}
		if (d.pooled != nil) != s.wantPooled {
			t.Errorf("after message %d: borrowed buffer held = %t, want %t", s.id, d.pooled != nil, s.wantPooled)
		}
		if s.wantPooled && unsafe.SliceData(m.Body) != unsafe.SliceData((*d.pooled)[ReplyOverhead:]) {
			t.Errorf("after message %d: body is not in the borrowed buffer", s.id)
		}
		if s.id == 3 && unsafe.SliceData(m.Body) == unsafe.SliceData(d.buf[ReplyOverhead:]) {
			t.Errorf("the long body is in the kept buffer")
		}
	}
	// With a small maximum the buffer never grows past it.
	d = NewDecoder(bytes.NewReader(mustAppend(t, nil, &Message{Type: TypePing})), 64)
	if err := d.Decode(&m); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if cap(d.buf) != 64 {
		t.Errorf("with max 64: buffer capacity %d, want 64", cap(d.buf))
	}
}

func TestDecoderInternsHandles(t *testing.T) {
	var stream []byte
	for i := range 3 {
		stream = mustAppend(t, stream, &Message{Type: TypeCall, ID: uint64(i + 1), Handle: "kv/get"})
	}
	for i := range 2 * handleCacheSize {
		stream = mustAppend(t, stream, &Message{Type: TypeSend, Handle: fmt.Sprintf("h%d", i)})
	}
	d := NewDecoder(bytes.NewReader(stream), 0)
	var m Message
	var first *byte
	for i := range 3 {
		if err := d.Decode(&m); err != nil {
			t.Fatalf("Decode: %v", err)
		}
		p := unsafe.StringData(m.Handle)
		if i == 0 {
			first = p
		} else if p != first {
			t.Errorf("call %d: handle %q is a new string, want the interned one", i+1, m.Handle)
		}
	}
	for i := range 2 * handleCacheSize {
		if err := d.Decode(&m); err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if want := fmt.Sprintf("h%d", i); m.Handle != want {
			t.Fatalf("send %d: handle %q, want %q", i, m.Handle, want)
		}
		if len(d.handles) > handleCacheSize {
			t.Fatalf("handle cache has %d entries, want ≤ %d", len(d.handles), handleCacheSize)
		}
	}
}

// loopReader returns b over and over.
type loopReader struct {
	b   []byte
	off int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}

func TestSteadyStateAllocs(t *testing.T) {
	msgs := []Message{
		{Type: TypeCall, ID: 1, Timeout: time.Second, Handle: "kv/get", Body: make([]byte, 64)},
		{Type: TypeCall, ID: 2, Handle: "kv/put", Body: make([]byte, 4096)},
		{Type: TypeReply, ID: 1, Body: make([]byte, 64)},
		{Type: TypeReply, ID: 2, Status: StatusHandlerError, Body: []byte("boom")},
		{Type: TypeReply, ID: 3, Body: make([]byte, 64<<10)},
		{Type: TypeSend, Handle: "log", Body: make([]byte, 200)},
		{Type: TypeCancel, ID: 1},
		{Type: TypePing, Opaque: 1},
		{Type: TypePong, Opaque: 1},
		{Type: TypeGoaway, Code: GoawayReplaced, Body: []byte("tie-break")},
	}
	for _, m := range msgs {
		t.Run(describe(&m), func(t *testing.T) {
			buf := mustAppend(t, nil, &m)
			if n := testing.AllocsPerRun(100, func() {
				buf, _ = AppendMessage(buf[:0], &m, DefaultMaxMessageSize)
			}); n != 0 {
				t.Errorf("AppendMessage: %v allocations, want 0", n)
			}
			d := NewDecoder(&loopReader{b: buf}, DefaultMaxMessageSize)
			var got Message
			if n := testing.AllocsPerRun(100, func() {
				if err := d.Decode(&got); err != nil {
					panic(err) // cannot happen on a valid looping stream
				}
			}); n != 0 {
				t.Errorf("Decode: %v allocations, want 0", n)
			}
			if !equalMessage(&got, &m) {
				t.Errorf("Decode = %s, want %s", describe(&got), describe(&m))
			}
		})
	}
}

// TestDocExamples decodes the examples of docs/protocol.md §7.2, checks their
// fields, and re-encodes them to the same bytes.
func TestDocExamples(t *testing.T) {
	want := map[string]Message{
		"call":         {Type: TypeCall, ID: 1, Timeout: 5 * time.Second, Handle: "echo", Body: []byte("hi")},
		"call-minimal": {Type: TypeCall, ID: 42, Handle: "x"},
		"reply":        {Type: TypeReply, ID: 1, Status: StatusOK, Body: []byte("hi")},
		"reply-error":  {Type: TypeReply, ID: 2, Status: StatusHandlerError, Body: []byte("boom")},
		"send":         {Type: TypeSend, Handle: "log", Body: []byte("x")},
		"cancel":       {Type: TypeCancel, ID: 1},
		"ping":         {Type: TypePing, Opaque: 0x0102030405060708},
		"pong":         {Type: TypePong, Opaque: 0x0102030405060708},
		"goaway":       {Type: TypeGoaway, Code: GoawayNormal, Body: []byte("bye")},
	}
	examples := dochex.Examples(t, protocolDoc, "7.2 Messages")
	seen := make(map[Type]bool)
	for name, b := range examples {
		w, ok := want[name]
		if !ok {
			t.Errorf("example %q is not checked by this test", name)
			continue
		}
		var got Message
		if err := DecodeMessage(b, &got, DefaultMaxMessageSize); err != nil {
			t.Errorf("example %q: DecodeMessage: %v", name, err)
			continue
		}
		if !equalMessage(&got, &w) {
			t.Errorf("example %q decodes as %s, want %s", name, describe(&got), describe(&w))
		}
		if enc := mustAppend(t, nil, &got); !bytes.Equal(enc, b) {
			t.Errorf("example %q re-encodes as %x, want %x", name, enc, b)
		}
		seen[got.Type] = true
	}
	for name := range want {
		if _, ok := examples[name]; !ok {
			t.Errorf("example %q is missing from the doc", name)
		}
	}
	for typ := TypeCall; typ <= TypeGoaway; typ++ {
		if !seen[typ] {
			t.Errorf("no doc example of a %v", typ)
		}
	}
}
