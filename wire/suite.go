package wire

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"runtime"
	"strconv"

	"github.com/flynn/noise"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sys/cpu"
)

// Suite is a Noise cipher (§3.1): the AEAD of the handshake and of every
// record. Its values are bits, so that a set of suites is their OR: the
// dialer's preamble carries exactly one (its offer), the responder's the set
// it accepts (§2).
type Suite uint8

// The cipher suites of §3.1.
const (
	// SuiteChaChaPoly is ChaCha20-Poly1305: every peer accepts it, and it is
	// fast without hardware support.
	SuiteChaChaPoly Suite = 0x01
	// SuiteAESGCM is AES-256-GCM: faster than ChaChaPoly where the CPU has
	// AES and carry-less multiply instructions, and much slower where it
	// has not, so a dialer offers it only on such a CPU.
	SuiteAESGCM Suite = 0x02

	// acceptedSuites is the set a responder announces: it accepts either.
	acceptedSuites = SuiteChaChaPoly | SuiteAESGCM
)

// String returns the suite's name in the Noise protocol name ("ChaChaPoly",
// "AESGCM"), or "Suite(N)" for anything else.
func (s Suite) String() string {
	switch s {
	case SuiteChaChaPoly:
		return "ChaChaPoly"
	case SuiteAESGCM:
		return "AESGCM"
	}
	return "Suite(" + strconv.Itoa(int(s)) + ")"
}

func (s Suite) valid() bool { return s == SuiteChaChaPoly || s == SuiteAESGCM }

// noiseCipher returns flynn/noise's cipher of the same name, which puts the
// suite into the Noise protocol name: Noise_XX_25519_<suite>_BLAKE2s.
func (s Suite) noiseCipher() noise.CipherFunc {
	if s == SuiteAESGCM {
		return noise.CipherAESGCM
	}
	return noise.CipherChaChaPoly
}

// DefaultSuite returns the suite a dialer offers when its Config names none:
// SuiteAESGCM when this CPU has hardware AES-GCM (AES and carry-less
// multiply instructions, as golang.org/x/sys/cpu reports them), else
// SuiteChaChaPoly.
func DefaultSuite() Suite {
	if hasHardwareAESGCM() {
		return SuiteAESGCM
	}
	return SuiteChaChaPoly
}

func hasHardwareAESGCM() bool {
	switch runtime.GOARCH {
	case "amd64", "386":
		return cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ
	case "arm64":
		return cpu.ARM64.HasAES && cpu.ARM64.HasPMULL
	case "s390x":
		return cpu.S390X.HasAES && cpu.S390X.HasAESGCM
	}
	return false
}

// recordAEAD is one direction's record cipher: the AEAD and the Noise nonce
// encoding of its suite (§4). Noise encodes the 64-bit counter after four
// zero bytes, little-endian for ChaChaPoly and big-endian for AESGCM.
type recordAEAD struct {
	aead      cipher.AEAD
	bigEndian bool
	nonce     [chacha20poly1305.NonceSize]byte // both suites use 12 bytes
}

// newRecordAEAD returns the record cipher of suite s with key k. It panics
// only for an invalid suite, which the handshake never produces.
func newRecordAEAD(s Suite, k [32]byte) recordAEAD {
	var (
		a   cipher.AEAD
		err error
	)
	switch s {
	case SuiteChaChaPoly:
		a, err = chacha20poly1305.New(k[:])
	case SuiteAESGCM:
		var b cipher.Block
		if b, err = aes.NewCipher(k[:]); err == nil {
			a, err = cipher.NewGCM(b)
		}
	default:
		panic("wire: record cipher for " + s.String())
	}
	if err != nil {
		panic(err) // only for a key of the wrong size
	}
	return recordAEAD{aead: a, bigEndian: s == SuiteAESGCM}
}

// setNonce encodes counter n into r.nonce and returns it.
func (r *recordAEAD) setNonce(n uint64) []byte {
	if r.bigEndian {
		binary.BigEndian.PutUint64(r.nonce[4:], n)
	} else {
		binary.LittleEndian.PutUint64(r.nonce[4:], n)
	}
	return r.nonce[:]
}
