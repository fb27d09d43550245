package wire

import (
	"bytes"
	"fmt"
)

// ProtocolVersion is the version of docs/protocol.md this package speaks; it
// is the preamble's version byte (§2, §6).
const ProtocolVersion = 2

// Preamble layout (§2):
//
//	offset size field
//	0      4    magic   "PNET"
//	4      1    version ProtocolVersion
//	5      1    suites  dialer: the one Suite it offers; responder: the Suites it accepts
//
// The first five bytes are the same in every version, so a peer of another
// version is told so (ErrVersion) rather than left waiting for bytes that
// its version does not send; the rest is read only once the version matches.
const (
	preambleMagic   = "PNET"
	preambleHeadLen = len(preambleMagic) + 1
	preambleLen     = preambleHeadLen + 1
)

// appendPreamble appends the preamble announcing version and suites to b.
func appendPreamble(b []byte, version uint8, suites Suite) []byte {
	return append(append(b, preambleMagic...), version, byte(suites))
}

// parsePreambleHead checks the first preambleHeadLen bytes of the peer's
// preamble p against the local version. It returns an error wrapping
// ErrBadMagic, or a *VersionError.
func parsePreambleHead(p []byte, local uint8) error {
	if len(p) != preambleHeadLen || !bytes.Equal(p[:len(preambleMagic)], []byte(preambleMagic)) {
		return fmt.Errorf("%w: got %q", ErrBadMagic, p)
	}
	if remote := p[len(preambleMagic)]; remote != local {
		return &VersionError{Local: local, Remote: remote}
	}
	return nil
}

// parseOffer checks the suites byte of a dialer's preamble: exactly one
// known suite (§2). Anything else wraps ErrSuite.
func parseOffer(b byte) (Suite, error) {
	if s := Suite(b); s.valid() {
		return s, nil
	}
	return 0, fmt.Errorf("%w: dialer offered %#02x, want exactly one of %v (%#02x) and %v (%#02x)",
		ErrSuite, b, SuiteChaChaPoly, byte(SuiteChaChaPoly), SuiteAESGCM, byte(SuiteAESGCM))
}

// checkAccepted checks that the responder's suites byte b holds the suite
// the dialer offered (§2). Bits of suites this version does not know are
// ignored. A miss wraps ErrSuite.
func checkAccepted(b byte, offer Suite) error {
	if b&byte(offer) == 0 {
		return fmt.Errorf("%w: responder accepts %#02x, which lacks our offer %v", ErrSuite, b, offer)
	}
	return nil
}
