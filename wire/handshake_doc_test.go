package wire

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"io"
	"testing"
)

// TestDocExamplesPreambleAndPayload checks docs/protocol.md §7.1 against the
// code, byte for byte.
func TestDocExamplesPreambleAndPayload(t *testing.T) {
	ex := docExamples(t, "7.1 ")
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

	check("preamble", appendPreamble(nil, ProtocolVersion))
	if err := parsePreamble(get("preamble"), ProtocolVersion); err != nil {
		t.Errorf("doc preamble: %v", err)
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
	local, err := newLocal(signer, static)
	if err != nil {
		t.Fatal(err)
	}
	check("identity-payload", local.payload)
	id, err := parsePayload(get("identity-payload"), get("noise-static-public"))
	if err != nil || id != signer.id {
		t.Errorf("parsing the doc's payload: %s, %v; want %s", id, err, signer.id)
	}

	// Records: an independent seal, what a Conn writes, and what it reads.
	key := [32]byte(get("record-key"))
	check("record-verdict-accept", sealRecord(t, key, 0, []byte{byte(Accept)}))
	check("record-hello", sealRecord(t, key, 1, []byte("hello")))

	out := &scriptConn{}
	c := newConn(out, newInbuf(out), key, key, signer.id)
	for _, p := range [][]byte{{byte(Accept)}, []byte("hello")} {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	stream := append(bytes.Clone(get("record-verdict-accept")), get("record-hello")...)
	if !bytes.Equal(out.written.Bytes(), stream) {
		t.Errorf("Conn wrote %x, doc has %x", out.written.Bytes(), stream)
	}

	in := &scriptConn{input: *bytes.NewReader(stream)}
	c = newConn(in, newInbuf(in), key, key, signer.id)
	if v, err := c.readVerdict(); v != Accept || err != nil {
		t.Errorf("reading the doc's verdict: %v, %v", v, err)
	}
	if got, err := io.ReadAll(c); string(got) != "hello" || err != nil {
		t.Errorf("reading the doc's record: %q, %v", got, err)
	}
}
