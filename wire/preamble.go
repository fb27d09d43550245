package wire

import (
	"bytes"
	"fmt"
)

// ProtocolVersion is the version of docs/protocol.md this package speaks; it
// is the preamble's version byte (§2, §6).
const ProtocolVersion = 1

// Preamble layout (§2):
//
//	offset size field
//	0      4    magic   "PNET"
//	4      1    version ProtocolVersion
const (
	preambleMagic = "PNET"
	preambleLen   = len(preambleMagic) + 1
)

// appendPreamble appends the preamble announcing version to b.
func appendPreamble(b []byte, version uint8) []byte {
	return append(append(b, preambleMagic...), version)
}

// parsePreamble checks the peer's preamble p (exactly preambleLen bytes)
// against the local version. It returns an error wrapping ErrBadMagic, or a
// *VersionError.
func parsePreamble(p []byte, local uint8) error {
	if len(p) != preambleLen || !bytes.Equal(p[:len(preambleMagic)], []byte(preambleMagic)) {
		return fmt.Errorf("%w: got %q", ErrBadMagic, p)
	}
	if remote := p[len(preambleMagic)]; remote != local {
		return &VersionError{Local: local, Remote: remote}
	}
	return nil
}
