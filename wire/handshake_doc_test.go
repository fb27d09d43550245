package wire

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"io"
	"os"
	"testing"

	"github.com/peernet/peernet/testing/dochex"
)

// protocolDoc is the normative spec whose hex examples the tests decode.
const protocolDoc = "../docs/protocol.md"

// TestDocExamplesPreambleAndPayload checks docs/protocol.md §7.1 against the
// code, byte for byte.
func TestDocExamplesPreambleAndPayload(t *testing.T) {
	ex := dochex.Examples(t, protocolDoc, "7.1 ")
	get := func(name string) []byte {
		t.Helper()
		b, ok := ex[name]
		if !ok {
			t.Fatalf("docs/protocol.md §7.1 has no example %q", name)
		}
		return b
	}
	check := func(name string, got []byte) {
		t.Helper()
		if want := get(name); !bytes.Equal(got, want) {
			t.Errorf("example %s:\n doc  %x\n code %x", name, want, got)
		}
	}

	check("preamble-dialer-chachapoly", appendPreamble(nil, ProtocolVersion, SuiteChaChaPoly))
	check("preamble-dialer-aesgcm", appendPreamble(nil, ProtocolVersion, SuiteAESGCM))
	check("preamble-responder", appendPreamble(nil, ProtocolVersion, acceptedSuites))
	for name, want := range map[string]Suite{"preamble-dialer-chachapoly": SuiteChaChaPoly, "preamble-dialer-aesgcm": SuiteAESGCM} {
		p := get(name)
		if err := parsePreambleHead(p[:preambleHeadLen], ProtocolVersion); err != nil {
			t.Errorf("doc %s: %v", name, err)
		}
		if s, err := parseOffer(p[preambleHeadLen]); s != want || err != nil {
			t.Errorf("doc %s offers %v, %v; want %v", name, s, err, want)
		}
		if err := checkAccepted(get("preamble-responder")[preambleHeadLen], want); err != nil {
			t.Errorf("doc preamble-responder does not accept %v: %v", want, err)
		}
	}

	signer := signerFromSeed(t, get("ed25519-seed"))
	check("ed25519-public", signer.priv.Public().(ed25519.PublicKey))
	static, err := ecdh.X25519().NewPrivateKey(get("noise-static-private"))
	if err != nil {
		t.Fatal(err)
	}
	check("noise-static-public", static.PublicKey().Bytes())
	msg := staticKeyMessage(get("noise-static-public"))
	check("signed-message", msg[:])
	local, err := newLocal(signer, static, Config{MaxMessageSize: DefaultMaxMessageSize})
	if err != nil {
		t.Fatal(err)
	}
	check("identity-payload", local.payload)
	pi, err := parsePayload(get("identity-payload"), get("noise-static-public"))
	if err != nil || pi.id != signer.id || pi.maxSize != DefaultMaxMessageSize {
		t.Errorf("parsing the doc's payload: %+v, %v; want %s and %d", pi, err, signer.id, DefaultMaxMessageSize)
	}

	// The PeerID text form (§6.1), derived from the spec's recipe.
	pub := get("ed25519-public")
	sum := sha256.Sum256(append([]byte("peernet peer id checksum v1\x00"), pub...))
	check("peerid-checksum", sum[:4])
	b32 := base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
	text := "pn1" + b32.EncodeToString(append(bytes.Clone(pub), get("peerid-checksum")...))
	const docPeerID = "pn1aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4m7yprnq" // as in §7.1's text
	if text != docPeerID || signer.id.String() != docPeerID {
		t.Errorf("PeerID text: recipe %s, trust %s, doc %s", text, signer.id, docPeerID)
	}
	if raw, err := os.ReadFile(protocolDoc); err != nil || !bytes.Contains(raw, []byte("`"+docPeerID+"`")) {
		t.Errorf("docs/protocol.md does not show the PeerID %s (%v)", docPeerID, err)
	}

	// Records of each suite: an independent seal, what a Conn writes, and
	// what it reads.
	key := [32]byte(get("record-key"))
	for _, tt := range []struct {
		suite  Suite
		suffix string
	}{{SuiteChaChaPoly, "chachapoly"}, {SuiteAESGCM, "aesgcm"}} {
		verdict, hello := "record-verdict-accept-"+tt.suffix, "record-hello-"+tt.suffix
		check(verdict, sealRecordSuite(t, tt.suite, key, 0, []byte{byte(Accept)}))
		check(hello, sealRecordSuite(t, tt.suite, key, 1, []byte("hello")))

		peer := peerIdentity{id: signer.id, maxSize: DefaultMaxMessageSize}
		out := &scriptConn{}
		c := newConn(out, newInbuf(out), tt.suite, key, key, peer)
		for _, p := range [][]byte{{byte(Accept)}, []byte("hello")} {
			if _, err := c.Write(p); err != nil {
				t.Fatal(err)
			}
		}
		stream := append(bytes.Clone(get(verdict)), get(hello)...)
		if !bytes.Equal(out.written.Bytes(), stream) {
			t.Errorf("%v: Conn wrote %x, doc has %x", tt.suite, out.written.Bytes(), stream)
		}

		in := &scriptConn{input: *bytes.NewReader(stream)}
		c = newConn(in, newInbuf(in), tt.suite, key, key, peer)
		if v, err := c.readVerdict(); v != Accept || err != nil {
			t.Errorf("%v: reading the doc's verdict: %v, %v", tt.suite, v, err)
		}
		if got, err := io.ReadAll(c); string(got) != "hello" || err != nil {
			t.Errorf("%v: reading the doc's record: %q, %v", tt.suite, got, err)
		}
	}
}
