package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Message errors (protocol.md §5). Every decoding error ends the connection;
// match them with errors.Is.
var (
	// ErrMessageTooLarge means a message's length L exceeds the maximum
	// message size: on decoding, the peer announced it (the body was not
	// read); on encoding, the message would not fit and was not written.
	ErrMessageTooLarge = errors.New("wire: message too large")
	// ErrMalformed means a message breaks the layout rules of §5 (bad
	// length, short body, bad handle, id 0, unknown status or goaway code,
	// trailing bytes), or a Message given to AppendMessage is invalid.
	ErrMalformed = errors.New("wire: malformed message")
	// ErrUnknownType means a message's type byte is not one of §5.1.
	ErrUnknownType = errors.New("wire: unknown message type")
)

// Message layout (protocol.md §5):
//
//	offset size field
//	0      4    length L of type + body (1 ≤ L ≤ the maximum message size)
//	4      1    type
//	5      L-1  body
//
// Bodies, by type:
//
//	call    id u64 | timeout_ms u32 | handle_len u8 | handle | args
//	reply   id u64 | status u8 | body
//	send    handle_len u8 | handle | args
//	cancel  id u64
//	ping    opaque u64
//	pong    opaque u64
//	goaway  code u8 | reason
const (
	// DefaultMaxMessageSize is the default maximum message size M: the
	// largest L (type + body; the length prefix is not counted).
	DefaultMaxMessageSize = 4 << 20
	// MaxHandleLen is the longest handle, in bytes; the shortest is 1.
	MaxHandleLen = 255

	// LengthSize is the size of the length prefix in front of every
	// message. It is not part of L and does not count against the maximum.
	LengthSize = 4

	typeSize      = 1
	idSize        = 8
	timeoutSize   = 4
	handleLenSize = 1
	statusSize    = 1
	codeSize      = 1
	opaqueSize    = 8

	// CallOverhead, ReplyOverhead, SendOverhead and GoawayOverhead are the
	// fixed bytes a message of that type adds to L besides its handle and
	// payload. A call with handle h and args a fits a maximum M exactly when
	// CallOverhead+len(h)+len(a) ≤ M; a reply with body b when
	// ReplyOverhead+len(b) ≤ M. The encoded size is LengthSize+L.
	CallOverhead   = typeSize + idSize + timeoutSize + handleLenSize // 14
	ReplyOverhead  = typeSize + idSize + statusSize                  // 10
	SendOverhead   = typeSize + handleLenSize                        // 2
	GoawayOverhead = typeSize + codeSize                             // 2

	cancelLen = typeSize + idSize     // L of every cancel
	pingLen   = typeSize + opaqueSize // L of every ping and pong

	// maxTimeout is the longest timeout a call can carry (about 49.7 days).
	maxTimeout = math.MaxUint32 * time.Millisecond
)

// Type is a message type (§5.1).
type Type uint8

// Message types.
const (
	TypeCall   Type = 1
	TypeReply  Type = 2
	TypeSend   Type = 3
	TypeCancel Type = 4
	TypePing   Type = 5
	TypePong   Type = 6
	TypeGoaway Type = 7
)

var typeNames = [...]string{
	TypeCall:   "call",
	TypeReply:  "reply",
	TypeSend:   "send",
	TypeCancel: "cancel",
	TypePing:   "ping",
	TypePong:   "pong",
	TypeGoaway: "goaway",
}

// String returns the name §5.1 gives t ("call", "reply", …), or "Type(N)"
// for an unknown type.
func (t Type) String() string {
	if t.valid() {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

func (t Type) valid() bool { return t >= TypeCall && t <= TypeGoaway }

// Status is the outcome of a call, carried by its reply (§5.2).
type Status uint8

// Reply statuses.
const (
	StatusOK               Status = iota // the handler returned a result
	StatusNoSuchHandle                   // the handle is not exposed
	StatusForbidden                      // the handle is exposed, but not to this caller
	StatusHandlerError                   // the handler returned an error; the body is its message
	StatusHandlerCrashed                 // the handler panicked or its plugin process died
	StatusUnavailable                    // the handler cannot serve now
	StatusOverloaded                     // too many calls in flight for this handle or caller
	StatusDeadlineExceeded               // the handler did not finish within the timeout
	StatusTooLarge                       // the args or the result exceed the maximum message size
)

var statusNames = [...]string{
	StatusOK:               "ok",
	StatusNoSuchHandle:     "no_such_handle",
	StatusForbidden:        "forbidden",
	StatusHandlerError:     "handler_error",
	StatusHandlerCrashed:   "handler_crashed",
	StatusUnavailable:      "unavailable",
	StatusOverloaded:       "overloaded",
	StatusDeadlineExceeded: "deadline_exceeded",
	StatusTooLarge:         "too_large",
}

// String returns the name §5.2 gives s ("ok", "no_such_handle", …), or
// "Status(N)" for an unknown status.
func (s Status) String() string {
	if s.valid() {
		return statusNames[s]
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

func (s Status) valid() bool { return s <= StatusTooLarge }

// FirstLocalStatus is the first of the local statuses, 64 to 127: outcomes
// that only a caller observes (package rpc names them). They never travel
// between peers; a plugin's call channel carries them in replies to the
// plugin's callbacks (docs/plugin-protocol.md). AppendMessage encodes them, and a
// Decoder accepts them only after AcceptLocalStatuses.
const FirstLocalStatus Status = 64

// Local reports whether s is one of the local statuses.
func (s Status) Local() bool { return s >= FirstLocalStatus && s < 128 }

// GoawayCode says why a peer is closing the connection (§5.1).
type GoawayCode uint8

// Goaway codes.
const (
	GoawayNormal        GoawayCode = 0 // normal shutdown
	GoawayUntrusted     GoawayCode = 1 // the receiver is not trusted any more
	GoawayProtocolError GoawayCode = 2 // the receiver broke this protocol
	GoawayReplaced      GoawayCode = 3 // replaced by another connection (tie-break)
)

var goawayNames = [...]string{
	GoawayNormal:        "normal",
	GoawayUntrusted:     "untrusted",
	GoawayProtocolError: "protocol_error",
	GoawayReplaced:      "replaced",
}

// String returns the code's name ("normal", "untrusted", "protocol_error",
// "replaced"), or "GoawayCode(N)" for an unknown code.
func (c GoawayCode) String() string {
	if c.valid() {
		return goawayNames[c]
	}
	return "GoawayCode(" + strconv.Itoa(int(c)) + ")"
}

func (c GoawayCode) valid() bool { return c <= GoawayReplaced }

// Message is one decoded or to-be-encoded message. Which fields matter
// depends on Type; AppendMessage ignores the others and decoding zeroes them.
type Message struct {
	Type Type

	// ID names a call: set in call, reply and cancel, never 0.
	ID uint64

	// Timeout is a call's timeout relative to sending it; 0 means none.
	// It travels in whole milliseconds: encoding rounds a positive value up
	// to the next millisecond, clamps it at about 49.7 days (max u32 ms),
	// and encodes a negative one (a deadline already past) as 1 ms, never as
	// "none".
	Timeout time.Duration

	// Handle is the target of a call or send: 1–MaxHandleLen bytes of UTF-8.
	// A decoded Handle is an ordinary string and stays valid.
	Handle string

	// Status is a reply's outcome.
	Status Status

	// Code is a goaway's reason code.
	Code GoawayCode

	// Body is a call's or send's args, a reply's body or a goaway's reason;
	// it may be empty (a decoded empty Body is nil). After decoding, Body
	// aliases the decoder's buffer (or DecodeMessage's input): with a
	// Decoder it is valid only until the next Decode, so copy it to keep it.
	Body []byte

	// Opaque is the value a ping carries and its pong echoes.
	Opaque uint64
}

// wireLen validates m and returns its L (type + body).
func (m *Message) wireLen() (int, error) {
	switch m.Type {
	case TypeCall:
		if m.ID == 0 {
			return 0, fmt.Errorf("encoding call: id 0: %w", ErrMalformed)
		}
		if err := CheckHandle(m.Handle); err != nil {
			return 0, fmt.Errorf("encoding call: %w", err)
		}
		return CallOverhead + len(m.Handle) + len(m.Body), nil
	case TypeReply:
		if m.ID == 0 {
			return 0, fmt.Errorf("encoding reply: id 0: %w", ErrMalformed)
		}
		if !m.Status.valid() && !m.Status.Local() {
			return 0, fmt.Errorf("encoding reply: unknown status %d: %w", m.Status, ErrMalformed)
		}
		return ReplyOverhead + len(m.Body), nil
	case TypeSend:
		if err := CheckHandle(m.Handle); err != nil {
			return 0, fmt.Errorf("encoding send: %w", err)
		}
		return SendOverhead + len(m.Handle) + len(m.Body), nil
	case TypeCancel:
		if m.ID == 0 {
			return 0, fmt.Errorf("encoding cancel: id 0: %w", ErrMalformed)
		}
		return cancelLen, nil
	case TypePing, TypePong:
		return pingLen, nil
	case TypeGoaway:
		if !m.Code.valid() {
			return 0, fmt.Errorf("encoding goaway: unknown code %d: %w", m.Code, ErrMalformed)
		}
		return GoawayOverhead + len(m.Body), nil
	}
	return 0, fmt.Errorf("encoding message: type %d: %w", m.Type, ErrUnknownType)
}

// CheckHandle reports why h cannot name a handle, or nil: a handle is 1 to
// MaxHandleLen bytes of UTF-8. The error matches ErrMalformed. It is the
// one rule for handle names, from the configuration file to a plugin.
func CheckHandle(h string) error {
	if len(h) < 1 || len(h) > MaxHandleLen {
		return fmt.Errorf("handle length %d not in 1..%d: %w", len(h), MaxHandleLen, ErrMalformed)
	}
	if !utf8.ValidString(h) {
		return fmt.Errorf("handle %q is not UTF-8: %w", h, ErrMalformed)
	}
	return nil
}

// timeoutMillis converts a call timeout to its wire form (see
// Message.Timeout).
func timeoutMillis(d time.Duration) uint32 {
	switch {
	case d == 0:
		return 0
	case d < 0:
		return 1
	case d >= maxTimeout:
		return math.MaxUint32
	}
	return uint32((d + time.Millisecond - 1) / time.Millisecond)
}

// AppendMessage appends the encoding of m, length prefix included, to dst
// and returns the extended slice. It checks m first: a known type; for a call
// or reply or cancel a non-zero ID; for a call or send a Handle of 1–255
// bytes of valid UTF-8; a known Status or Code. Then it checks that L, the
// length of type + body, is at most maxSize (maxSize ≤ 0 means
// DefaultMaxMessageSize); a larger message is ErrMessageTooLarge. On error dst
// is returned unchanged.
//
// It allocates only to grow dst, so appending to a reused buffer of enough
// capacity allocates nothing. It does not retain dst or m.
func AppendMessage(dst []byte, m *Message, maxSize int) ([]byte, error) {
	return appendMessage(dst, m, maxSize, true)
}

// AppendHeader is AppendMessage without m.Body: it checks m and appends
// everything up to where Body starts, with a length prefix that counts
// Body. The message is complete once len(m.Body) bytes of body follow it in
// the stream, so a large body can be written from where it lies (with
// Conn.WriteBuffers) instead of being copied after its header. Every type's
// Body is its last field.
func AppendHeader(dst []byte, m *Message, maxSize int) ([]byte, error) {
	return appendMessage(dst, m, maxSize, false)
}

// appendMessage appends m's encoding, with Body if body is set. The exported
// wrappers inline into their callers, so this is the only frame between them
// and wireLen: the path runs on fresh handler goroutines, whose small stacks
// a deeper one would make grow on every reply.
func appendMessage(dst []byte, m *Message, maxSize int, body bool) ([]byte, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	n, err := m.wireLen()
	if err != nil {
		return dst, err
	}
	if n > maxSize || n > math.MaxUint32 {
		return dst, fmt.Errorf("encoding %v: length %d exceeds maximum %d: %w", m.Type, n, maxSize, ErrMessageTooLarge)
	}
	var b []byte // the body, last field of the types that have one
	switch m.Type {
	case TypeCall, TypeReply, TypeSend, TypeGoaway:
		b = m.Body
	}
	grow := LengthSize + n
	if !body {
		grow -= len(b) // L, below, still counts b
		b = nil
	}
	dst = slices.Grow(dst, grow)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, byte(m.Type))
	switch m.Type {
	case TypeCall:
		dst = binary.BigEndian.AppendUint64(dst, m.ID)
		dst = binary.BigEndian.AppendUint32(dst, timeoutMillis(m.Timeout))
		dst = append(dst, byte(len(m.Handle)))
		dst = append(dst, m.Handle...)
	case TypeReply:
		dst = binary.BigEndian.AppendUint64(dst, m.ID)
		dst = append(dst, byte(m.Status))
	case TypeSend:
		dst = append(dst, byte(len(m.Handle)))
		dst = append(dst, m.Handle...)
	case TypeCancel:
		dst = binary.BigEndian.AppendUint64(dst, m.ID)
	case TypePing, TypePong:
		dst = binary.BigEndian.AppendUint64(dst, m.Opaque)
	case TypeGoaway:
		dst = append(dst, byte(m.Code))
	}
	return append(dst, b...), nil
}

// DecodeMessage decodes the one message that b holds, length prefix
// included, into m; b must end exactly where the message does. Messages
// longer than maxSize (≤ 0 means DefaultMaxMessageSize) are
// ErrMessageTooLarge. m.Body aliases b. It applies the same rules as
// Decoder.Decode, and a message it accepts re-encodes with AppendMessage to
// exactly b: the encoding is canonical.
func DecodeMessage(b []byte, m *Message, maxSize int) error {
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	if len(b) < LengthSize {
		return fmt.Errorf("decoding message: %d bytes, shorter than the length prefix: %w", len(b), ErrMalformed)
	}
	n := binary.BigEndian.Uint32(b)
	if err := checkLength(n, maxSize); err != nil {
		return err
	}
	if rest := len(b) - LengthSize; rest != int(n) {
		return fmt.Errorf("decoding message: length %d but %d bytes follow: %w", n, rest, ErrMalformed)
	}
	return parseMessage(b[LengthSize:], m, nil, false)
}

// checkLength checks a message length L from the wire against maxSize.
func checkLength(n uint32, maxSize int) error {
	if n == 0 {
		return fmt.Errorf("decoding message: length 0: %w", ErrMalformed)
	}
	if uint64(n) > uint64(maxSize) {
		return fmt.Errorf("decoding message: length %d exceeds maximum %d: %w", n, maxSize, ErrMessageTooLarge)
	}
	return nil
}

// parseMessage decodes the type + body b of one message into m. The handles
// it decodes go through hc, which may be nil.
func parseMessage(b []byte, m *Message, hc handleCache, local bool) error {
	t := Type(b[0])
	p := b[1:]
	*m = Message{Type: t}
	var err error
	switch t {
	case TypeCall:
		if len(p) < idSize+timeoutSize+handleLenSize {
			return shortBody(t, len(p))
		}
		m.ID = binary.BigEndian.Uint64(p)
		if m.ID == 0 {
			return malformed(t, "id 0")
		}
		m.Timeout = time.Duration(binary.BigEndian.Uint32(p[idSize:])) * time.Millisecond
		m.Handle, m.Body, err = parseHandle(t, p[idSize+timeoutSize:], hc)
	case TypeReply:
		if len(p) < idSize+statusSize {
			return shortBody(t, len(p))
		}
		m.ID = binary.BigEndian.Uint64(p)
		if m.ID == 0 {
			return malformed(t, "id 0")
		}
		m.Status = Status(p[idSize])
		if !m.Status.valid() && !(local && m.Status.Local()) {
			return malformed(t, "unknown status "+strconv.Itoa(int(m.Status)))
		}
		m.Body = tail(p[idSize+statusSize:])
	case TypeSend:
		if len(p) < handleLenSize {
			return shortBody(t, len(p))
		}
		m.Handle, m.Body, err = parseHandle(t, p, hc)
	case TypeCancel:
		if err := fixedBody(t, p, idSize); err != nil {
			return err
		}
		m.ID = binary.BigEndian.Uint64(p)
		if m.ID == 0 {
			return malformed(t, "id 0")
		}
	case TypePing, TypePong:
		if err := fixedBody(t, p, opaqueSize); err != nil {
			return err
		}
		m.Opaque = binary.BigEndian.Uint64(p)
	case TypeGoaway:
		if len(p) < codeSize {
			return shortBody(t, len(p))
		}
		m.Code = GoawayCode(p[0])
		if !m.Code.valid() {
			return malformed(t, "unknown code "+strconv.Itoa(int(m.Code)))
		}
		m.Body = tail(p[codeSize:])
	default:
		return fmt.Errorf("decoding message: type %d: %w", t, ErrUnknownType)
	}
	return err
}

// parseHandle splits p, which starts at handle_len, into handle and the rest.
func parseHandle(t Type, p []byte, hc handleCache) (string, []byte, error) {
	n := int(p[0])
	p = p[handleLenSize:]
	switch {
	case n == 0:
		return "", nil, malformed(t, "handle length 0")
	case n > len(p):
		return "", nil, malformed(t, "handle length "+strconv.Itoa(n)+" past the end ("+strconv.Itoa(len(p))+" bytes left)")
	}
	h, ok := hc.intern(p[:n])
	if !ok {
		return "", nil, malformed(t, "handle is not UTF-8")
	}
	return h, tail(p[n:]), nil
}

func fixedBody(t Type, p []byte, size int) error {
	if len(p) < size {
		return shortBody(t, len(p))
	}
	if len(p) > size {
		return malformed(t, "trailing bytes ("+strconv.Itoa(len(p)-size)+")")
	}
	return nil
}

// tail returns p, or nil if it is empty, so an empty Body is always nil.
func tail(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	return p
}

func shortBody(t Type, n int) error {
	return malformed(t, "body of "+strconv.Itoa(n)+" bytes is shorter than its fixed fields")
}

func malformed(t Type, detail string) error {
	return fmt.Errorf("decoding %v: %s: %w", t, detail, ErrMalformed)
}

// handleCacheSize bounds a Decoder's interned handles. A peer calls few
// distinct handles, so this is enough to make steady-state decoding
// allocation-free; a peer cycling through more only costs allocations.
const handleCacheSize = 64

// handleCache interns handle strings so that decoding a call to a handle seen
// before does not allocate. A nil cache interns nothing.
type handleCache map[string]string

// intern returns b as a string, or false if it is not valid UTF-8.
func (c handleCache) intern(b []byte) (string, bool) {
	if s, ok := c[string(b)]; ok { // the conversion does not allocate
		return s, true
	}
	if !utf8.Valid(b) {
		return "", false
	}
	s := string(b)
	if c != nil {
		if len(c) >= handleCacheSize {
			clear(c) // start over rather than track recency
		}
		c[s] = s
	}
	return s, true
}

// Body buffer sizes of a Decoder.
const (
	// minBufferSize is the smallest body buffer a Decoder allocates.
	minBufferSize = 512
	// keptBufferMax is the largest body buffer a Decoder keeps of its own
	// between messages: what an idle connection's decoder costs.
	keptBufferMax = 4 << 10
	// retainedBufferMax is the largest body buffer a Decoder uses without
	// allocating: a message up to it (a 64 KiB payload plus its fixed
	// fields) borrows a buffer from a pool, returned at the next Decode, so
	// a stream of such messages decodes without allocating while an idle
	// connection holds none. A longer message (up to the maximum, 4 MiB by
	// default) gets a buffer of its own that the Decoder does not keep: it
	// is garbage once the caller drops that Body, so one large message does
	// not pin megabytes for the life of a connection.
	retainedBufferMax = 128 << 10
)

var bodyPool = sync.Pool{New: func() any { b := make([]byte, retainedBufferMax); return &b }}

// Decoder reads messages from a byte stream, typically a secure connection's
// plaintext. It reads exactly the bytes of each message, never ahead; it
// does no buffering of its own, so r should be buffered if small reads are
// costly. A Decoder is not safe for concurrent use.
type Decoder struct {
	r       io.Reader
	max     int
	buf     []byte  // body buffer reused across messages; cap ≤ keptBufferMax
	pooled  *[]byte // a borrowed body buffer, returned at the next Decode
	handles handleCache
	err     error // sticky: once set, every Decode returns it

	// ownLarge makes every message above keptBufferMax get a buffer of
	// its own (see OwnLargeBodies); fresh says the last decoded message's
	// buffer is its own, for Take.
	ownLarge bool
	fresh    bool

	local bool // accept local statuses (AcceptLocalStatuses)

	// The message being read, kept across a timeout so Decode can resume.
	hdr  [LengthSize]byte
	hdrN int    // bytes of hdr read; LengthSize once the length is known
	msg  []byte // type + body read so far
	msgN int    // L, once hdrN == LengthSize
}

// NewDecoder returns a Decoder that reads messages from r and rejects any
// longer than maxSize (≤ 0 means DefaultMaxMessageSize).
func NewDecoder(r io.Reader, maxSize int) *Decoder {
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	return &Decoder{r: r, max: maxSize, handles: make(handleCache)}
}

// Decode reads the next message into m, blocking until it has arrived whole.
// It reads the length first and rejects a length over the maximum before
// allocating or reading the body (ErrMessageTooLarge). A clean end of the
// stream between messages is io.EOF; an end inside a message wraps
// io.ErrUnexpectedEOF; a message that breaks §5 is ErrMalformed or
// ErrUnknownType.
//
// m.Body aliases the Decoder's buffer and is valid only until the next call
// to Decode. A decoded Handle is an ordinary string; repeated handles share
// one, so steady-state decoding does not allocate. On error m is zeroed.
//
// A timeout from r (an error with a Timeout method that reports true, such
// as a passed read deadline) is returned wrapped and is not fatal: the bytes
// read so far are kept and the next Decode resumes the same message. Any
// other error is sticky: the stream is no longer framed, every later call
// returns the same error, and the caller should close the connection.
func (d *Decoder) Decode(m *Message) error {
	if d.err != nil {
		*m = Message{}
		return d.err
	}
	if err := d.decode(m); err != nil {
		*m = Message{}
		if !retryable(err) {
			d.err = err
			d.msg = nil
		}
		return err
	}
	return nil
}

// OwnLargeBodies makes d read every message longer than 4 KiB into a buffer
// of its own, sized to the message, instead of a buffer it reuses, so that
// Take hands such a Body over without copying it. Use it when the caller
// keeps every large Body anyway: reading into a reused buffer and copying
// out would touch each byte twice. Call it before the first Decode.
func (d *Decoder) OwnLargeBodies() { d.ownLarge = true }

// AcceptLocalStatuses makes d accept replies with a local status (see
// FirstLocalStatus), as a plugin's call channel carries them; on a
// connection between peers they stay malformed.
func (d *Decoder) AcceptLocalStatuses() { d.local = true }

// Take returns m.Body, just decoded by d into m, as a slice the caller
// owns: the Body itself when its buffer belongs to that message alone (a
// message over 128 KiB, or over 4 KiB after OwnLargeBodies), which d then
// forgets, and otherwise a copy. An empty Body is nil. Call it at most once
// per message, before the next Decode.
func (d *Decoder) Take(m *Message) []byte {
	if len(m.Body) == 0 {
		return nil
	}
	if d.fresh {
		d.fresh = false
		return m.Body
	}
	return append(make([]byte, 0, len(m.Body)), m.Body...)
}

func (d *Decoder) decode(m *Message) error {
	if d.hdrN == 0 && d.pooled != nil {
		// The previous message's Body is dead now.
		bodyPool.Put(d.pooled)
		d.pooled = nil
	}
	if d.hdrN == 0 {
		d.fresh = false
	}
	if d.hdrN < LengthSize {
		n, err := io.ReadFull(d.r, d.hdr[d.hdrN:])
		d.hdrN += n
		if err != nil {
			if err == io.EOF {
				if d.hdrN == 0 {
					return io.EOF // between messages: a clean end
				}
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading message length: %w", err)
		}
		length := binary.BigEndian.Uint32(d.hdr[:])
		if err := checkLength(length, d.max); err != nil {
			return err
		}
		d.msgN = int(length)
		d.msg = d.bodyBuffer(d.msgN)
	}
	for len(d.msg) < d.msgN {
		if len(d.msg) == cap(d.msg) {
			// Only a long message gets here: its buffer doubles as its
			// bytes arrive, so memory follows what the peer has sent, not
			// what its length claims.
			d.msg = slices.Grow(d.msg, min(d.msgN-len(d.msg), cap(d.msg)))
		}
		k, err := io.ReadFull(d.r, d.msg[len(d.msg):min(d.msgN, cap(d.msg))])
		d.msg = d.msg[:len(d.msg)+k]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading message: %w", err)
		}
	}
	b := d.msg
	d.hdrN, d.msg = 0, nil
	return parseMessage(b, m, d.handles, d.local)
}

// bodyBuffer returns an empty buffer to read a message of length n into,
// 1 ≤ n ≤ d.max. Up to retainedBufferMax it is the kept buffer, grown if
// need be; a longer message gets a buffer of its own, which starts smaller
// than n and that the Decoder drops once read.
func (d *Decoder) bodyBuffer(n int) []byte {
	switch {
	case n > retainedBufferMax:
		d.fresh = true
		return make([]byte, 0, min(n, 2*retainedBufferMax))
	case n > keptBufferMax && d.ownLarge:
		d.fresh = true
		return make([]byte, 0, n)
	case n > keptBufferMax:
		d.pooled = bodyPool.Get().(*[]byte)
		return (*d.pooled)[:0]
	}
	if cap(d.buf) < n {
		d.buf = make([]byte, min(max(n, 2*cap(d.buf), minBufferSize), keptBufferMax, d.max))
	}
	return d.buf[:0]
}

// retryable reports whether err is a timeout, after which reading can be
// retried.
func retryable(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
