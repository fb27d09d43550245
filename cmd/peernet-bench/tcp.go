package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The raw TCP baseline speaks frames of
//
//	offset size field
//	0      8    id, chosen by the client, echoed by the server
//	8      4    length n of the payload
//	12     n    payload
//
// over plain TCP: no encryption, no authentication, no handles, no
// deadlines. The client pipelines any number of calls on one connection and
// matches replies by id; the server answers in order from one goroutine per
// connection, coalescing replies into one write while more requests are
// already buffered. It is the floor PeerNet's own costs are measured from.
//
// The same client and server, with every connection wrapped in Noise
// records (noise.go), are the Noise framing floor.
const (
	tcpHeaderLen = 12
	tcpMaxFrame  = 4 << 20
	tcpBufSize   = 64 << 10
)

var errTCPClosed = errors.New("tcp baseline: connection closed")

// wrapper turns a fresh TCP connection into the connection the frames travel
// on: plain TCP itself, or Noise records. dialer says which side it is.
type wrapper func(c net.Conn, dialer bool) (net.Conn, error)

func plainTCP(c net.Conn, _ bool) (net.Conn, error) { return c, nil }

func newTCPSystem() (system, error) { return newFramedSystem("raw TCP", plainTCP) }

// newFramedSystem starts the frame echo server and one pipelining client,
// every connection wrapped by wrap.
func newFramedSystem(name string, wrap wrapper) (system, error) {
	srv, err := startTCPServer(wrap)
	if err != nil {
		return system{}, err
	}
	cl, err := dialTCPClient(srv.addr(), wrap)
	if err != nil {
		srv.close()
		return system{}, err
	}
	return system{
		name:   name,
		client: cl,
		connect: func(context.Context) (time.Duration, error) {
			return tcpFirstReply(srv.addr(), wrap)
		},
		close: func() {
			cl.close()
			srv.close()
		},
	}, nil
}

type tcpServer struct {
	ln    net.Listener
	wrap  wrapper
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startTCPServer(wrap wrapper) (*tcpServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &tcpServer{ln: ln, wrap: wrap, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *tcpServer) addr() string { return s.ln.Addr().String() }

func (s *tcpServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if w, err := s.wrap(c, false); err == nil {
				serveFrames(w)
			}
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// serveFrames echoes the frames read from c until c fails or closes, in
// order, from the calling goroutine. The raw Unix-socket floor of the plugin
// section runs it in a child process.
func serveFrames(c net.Conn) {
	br := bufio.NewReaderSize(c, tcpBufSize)
	bw := bufio.NewWriterSize(c, tcpBufSize)
	var hdr [tcpHeaderLen]byte
	var body []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[8:]))
		if n > tcpMaxFrame {
			return
		}
		if cap(body) < n {
			body = make([]byte, n)
		}
		if _, err := io.ReadFull(br, body[:n]); err != nil {
			return
		}
		bw.Write(hdr[:])
		bw.Write(body[:n])
		if !frameBuffered(br) {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}

// frameBuffered reports whether br holds a whole frame, so reading it will
// not block and a flush can wait.
func frameBuffered(br *bufio.Reader) bool {
	if br.Buffered() < tcpHeaderLen {
		return false
	}
	hdr, _ := br.Peek(tcpHeaderLen)
	return br.Buffered() >= tcpHeaderLen+int(binary.BigEndian.Uint32(hdr[8:]))
}

func (s *tcpServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// tcpClient pipelines calls over one connection. A caller that finds no
// write in progress writes its frame itself; frames queued meanwhile are
// written by that caller in one batch after its own, so concurrent calls
// share syscalls. One reader goroutine hands replies to their waiters.
type tcpClient struct {
	c net.Conn

	wmu     sync.Mutex
	writing bool
	pending []byte
	spare   []byte
	werr    error

	pmu     sync.Mutex
	lastID  uint64
	waiters map[uint64]chan tcpReply
	rerr    error

	readerDone chan struct{}
}

type tcpReply struct {
	body []byte
	err  error
}

var tcpWaiterPool = sync.Pool{New: func() any { return make(chan tcpReply, 1) }}

func dialTCPClient(addr string, wrap wrapper) (*tcpClient, error) {
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c, err := wrap(raw, true)
	if err != nil {
		raw.Close()
		return nil, err
	}
	return newFrameClient(c), nil
}

// newFrameClient starts a pipelining client on c, which it owns: close
// closes c and waits for the client's reader.
func newFrameClient(c net.Conn) *tcpClient {
	cl := &tcpClient{c: c, waiters: make(map[uint64]chan tcpReply), readerDone: make(chan struct{})}
	go cl.readLoop()
	return cl
}

func (cl *tcpClient) echo(ctx context.Context, p []byte) ([]byte, error) {
	ch := tcpWaiterPool.Get().(chan tcpReply)
	cl.pmu.Lock()
	if cl.rerr != nil {
		cl.pmu.Unlock()
		return nil, cl.rerr
	}
	cl.lastID++
	id := cl.lastID
	cl.waiters[id] = ch
	cl.pmu.Unlock()
	if err := cl.write(id, p); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		tcpWaiterPool.Put(ch)
		return r.body, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (cl *tcpClient) write(id uint64, p []byte) error {
	cl.wmu.Lock()
	defer cl.wmu.Unlock()
	if cl.werr != nil {
		return cl.werr
	}
	cl.pending = binary.BigEndian.AppendUint64(cl.pending, id)
	cl.pending = binary.BigEndian.AppendUint32(cl.pending, uint32(len(p)))
	cl.pending = append(cl.pending, p...)
	if cl.writing {
		return nil // the writer in progress sends it after its own batch
	}
	cl.writing = true
	for len(cl.pending) > 0 && cl.werr == nil {
		buf := cl.pending
		cl.pending = cl.spare[:0]
		cl.wmu.Unlock()
		_, err := cl.c.Write(buf)
		cl.wmu.Lock()
		cl.spare = buf[:0]
		if err != nil {
			cl.werr = err
		}
	}
	cl.writing = false
	return cl.werr
}

func (cl *tcpClient) readLoop() {
	defer close(cl.readerDone)
	br := bufio.NewReaderSize(cl.c, tcpBufSize)
	var hdr [tcpHeaderLen]byte
	var err error
	for {
		if _, err = io.ReadFull(br, hdr[:]); err != nil {
			break
		}
		id := binary.BigEndian.Uint64(hdr[:])
		n := int(binary.BigEndian.Uint32(hdr[8:]))
		if n > tcpMaxFrame {
			err = fmt.Errorf("tcp baseline: %d-byte frame", n)
			break
		}
		body := make([]byte, n) // the caller owns its reply
		if _, err = io.ReadFull(br, body); err != nil {
			break
		}
		cl.pmu.Lock()
		ch := cl.waiters[id]
		delete(cl.waiters, id)
		cl.pmu.Unlock()
		if ch != nil {
			ch <- tcpReply{body: body}
		}
	}
	cl.pmu.Lock()
	cl.rerr = fmt.Errorf("%w: %w", errTCPClosed, err)
	for id, ch := range cl.waiters {
		ch <- tcpReply{err: cl.rerr}
		delete(cl.waiters, id)
	}
	cl.pmu.Unlock()
}

func (cl *tcpClient) close() {
	cl.c.Close()
	<-cl.readerDone
}

// tcpFirstReply dials addr, wraps the connection, echoes 64 bytes and
// closes.
func tcpFirstReply(addr string, wrap wrapper) (time.Duration, error) {
	p := payload(smallPayload)
	frame := make([]byte, 0, tcpHeaderLen+len(p))
	frame = binary.BigEndian.AppendUint64(frame, 1)
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(p)))
	frame = append(frame, p...)
	reply := make([]byte, len(frame))

	t0 := time.Now()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer raw.Close()
	c, err := wrap(raw, true)
	if err != nil {
		return 0, err
	}
	if _, err := c.Write(frame); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(c, reply); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	return d, checkEcho(reply[tcpHeaderLen:], p)
}
