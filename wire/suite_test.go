package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/peernet/peernet/trust"
)

// TestHandshakeSuites runs a handshake with each suite in both roles and
// checks that both sides settle on the dialer's offer, that records flow
// both ways, and that each learns the other's maximum message size.
func TestHandshakeSuites(t *testing.T) {
	checkLeaks(t)
	mk := func(name string, suite Suite, maxSize int) *Local {
		l, err := NewLocal(newTestSigner(t, name), Config{Suite: suite, MaxMessageSize: maxSize})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, suite := range []Suite{SuiteChaChaPoly, SuiteAESGCM} {
		// The responder's own preference does not matter: it takes the
		// dialer's offer.
		other := SuiteAESGCM
		if suite == SuiteAESGCM {
			other = SuiteChaChaPoly
		}
		a, b := mk("a", suite, 64<<10), mk("b", other, 8<<20)
		aAsResponder := mk("a", other, 64<<10)
		bAsDialer := mk("b", suite, 8<<20)
		for _, tt := range []struct {
			name              string
			dialer, responder *Local
		}{
			{"a dials b", a, b},
			{"b dials a", bAsDialer, aAsResponder},
		} {
			t.Run(suite.String()+"/"+tt.name, func(t *testing.T) {
				d, r := tcpPair(t)
				cr, sr := runHandshake(t, testContext(t, 10*time.Second), d, r, tt.dialer, tt.responder, tt.responder.PeerID(), acceptAll)
				if cr.err != nil || sr.err != nil {
					t.Fatalf("handshake: client: %v; server: %v", cr.err, sr.err)
				}
				if cr.conn.Suite() != suite || sr.conn.Suite() != suite {
					t.Errorf("suites: client %v, server %v; want %v", cr.conn.Suite(), sr.conn.Suite(), suite)
				}
				if got, want := cr.conn.PeerMaxMessageSize(), tt.responder.MaxMessageSize(); got != want {
					t.Errorf("client sees the responder's max %d, want %d", got, want)
				}
				if got, want := sr.conn.PeerMaxMessageSize(), tt.dialer.MaxMessageSize(); got != want {
					t.Errorf("server sees the dialer's max %d, want %d", got, want)
				}
				big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // several records
				exchange(t, cr.conn, sr.conn, big)
				exchange(t, sr.conn, cr.conn, []byte("pong"))
			})
		}
	}
}

// TestTamperedSuiteOffer changes the dialer's offer in transit, each way:
// the responder then runs a Noise protocol with another name, so the dialer
// fails to authenticate message 2 and never sends message 3; the responder
// sees the dialer leave.
func TestTamperedSuiteOffer(t *testing.T) {
	checkLeaks(t)
	for _, tt := range []struct{ offered, delivered Suite }{
		{SuiteAESGCM, SuiteChaChaPoly}, // a downgrade
		{SuiteChaChaPoly, SuiteAESGCM},
	} {
		t.Run(tt.offered.String()+" to "+tt.delivered.String(), func(t *testing.T) {
			a, b := newTestLocalSuite(t, "a", tt.offered), newTestLocal(t, "b")
			d, r := tcpPair(t)
			spyD := &spyConn{Conn: d}
			first := true
			spyD.setMutate(func(p []byte) []byte {
				if first {
					first = false
					if p[preambleHeadLen] != byte(tt.offered) {
						t.Errorf("dialer's first write %x does not offer %v", p[:preambleLen], tt.offered)
					}
					p[preambleHeadLen] = byte(tt.delivered)
				}
				return p
			})
			authorized := false
			cr, sr := runHandshake(t, testContext(t, 10*time.Second), spyD, r, a, b, b.PeerID(),
				func(trust.PeerID) Verdict { authorized = true; return Accept })
			if !errors.Is(cr.err, ErrBadHandshake) {
				t.Errorf("client error = %v, want ErrBadHandshake", cr.err)
			}
			if sr.err == nil || !errors.Is(sr.err, io.EOF) {
				t.Errorf("server error = %v, want EOF reading message 3", sr.err)
			}
			if authorized {
				t.Error("the responder authorized a dialer over a tampered offer")
			}
		})
	}
}

// TestSuiteRefused covers offers a responder cannot take and a responder
// that does not accept the dialer's offer: each side fails with ErrSuite
// before any Noise message is processed.
func TestSuiteRefused(t *testing.T) {
	checkLeaks(t)
	a, b := newTestLocalSuite(t, "a", SuiteAESGCM), newTestLocal(t, "b")
	for _, offer := range []byte{0x00, 0x03, 0x04, 0x80} {
		t.Run("dialer offers "+Suite(offer).String(), func(t *testing.T) {
			d, r := tcpPair(t)
			script := append(appendPreamble(nil, ProtocolVersion, Suite(offer)), 0, 32)
			got := rawPeer(d, append(script, make([]byte, 32)...), false)
			_, err := Server(testContext(t, 10*time.Second), r, b, acceptAll)
			if !errors.Is(err, ErrSuite) {
				t.Errorf("Server error = %v, want ErrSuite", err)
			}
			// The dialer learns which suites the responder takes.
			if g := <-got; !bytes.Equal(g, appendPreamble(nil, ProtocolVersion, acceptedSuites)) {
				t.Errorf("dialer read %x, want the responder's preamble alone", g)
			}
		})
	}
	t.Run("responder does not accept the offer", func(t *testing.T) {
		d, r := tcpPair(t)
		got := rawPeer(r, appendPreamble(nil, ProtocolVersion, SuiteChaChaPoly), false)
		_, err := Client(testContext(t, 10*time.Second), d, a, b.PeerID())
		if !errors.Is(err, ErrSuite) {
			t.Errorf("Client error = %v, want ErrSuite", err)
		}
		<-got
	})
}
