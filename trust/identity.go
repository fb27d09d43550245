package trust

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// KeyfileName is the identity keyfile's name inside a data directory.
const KeyfileName = "identity.key"

// Identity keyfile format, version 1: see LoadIdentity.
const (
	keyfileMagic   = "PEERNET IDENTITY"
	keyfileVersion = 1
	keyfileSeedKey = "seed: "
	keyfileIDKey   = "peer-id: "
	keyfileLines   = 3
	maxKeyfileSize = 4 << 10
)

// Identity is a node's Ed25519 key pair. Create one with GenerateIdentity,
// LoadIdentity or LoadOrCreateIdentity; the zero Identity is not usable. An
// Identity is immutable and safe for concurrent use. Its String and GoString
// methods print only the PeerID, so it never leaks the key into logs.
type Identity struct {
	priv ed25519.PrivateKey
	id   PeerID
}

// GenerateIdentity returns a new random identity. It does not write it
// anywhere.
func GenerateIdentity() (*Identity, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("generating identity: %w", err)
	}
	return identityFromSeed(seed), nil
}

func identityFromSeed(seed []byte) *Identity {
	priv := ed25519.NewKeyFromSeed(seed)
	id, err := PeerIDFromPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		// An all-zero public key is not a point any seed maps to.
		panic("trust: ed25519 produced an invalid public key: " + err.Error())
	}
	return &Identity{priv: priv, id: id}
}

// PeerID returns the identity's address, its public key.
func (i *Identity) PeerID() PeerID { return i.id }

// Sign returns the Ed25519 signature of msg; the caller owns it. Verify it
// with PeerID.Verify.
func (i *Identity) Sign(msg []byte) []byte { return ed25519.Sign(i.priv, msg) }

// String returns "Identity(pn1…)": the PeerID, never the private key.
func (i *Identity) String() string { return "Identity(" + i.id.String() + ")" }

// GoString is String, so %#v does not print the private key either.
func (i *Identity) GoString() string { return i.String() }

// LoadIdentity reads the identity keyfile at path. The format, version 1, is
// UTF-8 text, mode 0600, of exactly three lines, each ending in "\n":
//
//	PEERNET IDENTITY v1
//	seed: <32-byte Ed25519 seed (RFC 8032 private key), standard padded base64: 44 characters>
//	peer-id: <the PeerID derived from the seed, canonical text form>
//
// Line 1 names the format and its version; any other version is refused
// rather than guessed at. The seed is the secret; the peer-id line is for
// humans (cat the file to see whose key it is) and is checked against the
// seed, so a damaged or hand-edited file is caught. Nothing else is allowed:
// no comments, blank lines or carriage returns. Files over 4 KiB are refused
// before they are read. Error messages never quote the seed.
//
// LoadIdentity refuses,
// with an error naming path and the fix, a keyfile that is a symbolic link
// or owned by another uid than this process's (ErrUnsafeDataDir), that
// group or others may read or write (ErrKeyfilePermissions), that is not a
// regular file, empty, truncated, not a PeerNet keyfile or inconsistent
// (ErrBadKeyfile), or that has another format version (ErrKeyfileVersion).
// It never blocks on a FIFO. A missing file gives an error matching
// fs.ErrNotExist.
func LoadIdentity(path string) (*Identity, error) {
	f, fi, err := openDataFile(path, os.O_RDONLY, ErrBadKeyfile)
	if isNotExist(err) {
		return nil, fmt.Errorf("loading identity: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("loading identity %s: %w", path, err)
	}
	defer f.Close()
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("loading identity %s: %w: mode %04o lets group or others access the private key; fix with: chmod 600 %s",
			path, ErrKeyfilePermissions, uint32(perm), path)
	}
	data, err := readFileLimit(f, maxKeyfileSize)
	if err != nil {
		var tl errFileTooLarge
		if errors.As(err, &tl) {
			err = fmt.Errorf("%w: %v; not a PeerNet identity keyfile", ErrBadKeyfile, tl)
		}
		return nil, fmt.Errorf("loading identity %s: %w", path, err)
	}
	id, err := parseKeyfile(data)
	if err != nil {
		return nil, fmt.Errorf("loading identity %s: %w", path, err)
	}
	return id, nil
}

// LoadOrCreateIdentity loads the identity in dir's KeyfileName, or, if there
// is none, generates one and writes it (creating dir, mode 0700, if needed);
// created says which. The new keyfile appears atomically, mode 0600, and an
// existing file is never replaced: if another process creates the keyfile at
// the same moment, the one that lands first wins and the other loads it. Any
// error from an existing keyfile (see LoadIdentity) is returned as is; the
// file is left alone for the operator to fix. Call it with the data
// directory locked (LockDir): it removes temporary files a crash left behind.
func LoadOrCreateIdentity(dir string) (id *Identity, created bool, err error) {
	path := filepath.Join(dir, KeyfileName)
	id, err = LoadIdentity(path)
	if err == nil {
		removeStrayTemps(path)
		return id, false, nil
	}
	if !isNotExist(err) {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("creating data dir: %w", err)
	}
	id, err = GenerateIdentity()
	if err != nil {
		return nil, false, err
	}
	if err := createKeyfile(path, encodeKeyfile(id)); err != nil {
		// Lost a race with another creator (EEXIST), or its clean-up took our
		// temporary file: whichever keyfile is in place now is the identity.
		if existing, lerr := LoadIdentity(path); lerr == nil || !isNotExist(lerr) {
			return existing, false, lerr
		}
		return nil, false, fmt.Errorf("creating identity %s: %w", path, err)
	}
	removeStrayTemps(path)
	return id, true, nil
}

// createKeyfile writes data to path atomically and durably without ever
// replacing an existing file: link(2), unlike rename(2), fails with EEXIST
// if the name is taken.
func createKeyfile(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("linking into place: %w", err)
		}
		return fmt.Errorf("linking into place (the file system must support hard links): %w", err)
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("removing temporary file: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// encodeKeyfile returns id's keyfile contents. They contain the secret seed.
func encodeKeyfile(id *Identity) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s v%d\n", keyfileMagic, keyfileVersion)
	b.WriteString(keyfileSeedKey + base64.StdEncoding.EncodeToString(id.priv.Seed()) + "\n")
	b.WriteString(keyfileIDKey + id.id.String() + "\n")
	return []byte(b.String())
}

// parseKeyfile decodes keyfile contents. Its errors never quote the seed
// line, so they are safe to log.
func parseKeyfile(data []byte) (*Identity, error) {
	if len(data) > maxKeyfileSize {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit; not a PeerNet identity keyfile",
			ErrBadKeyfile, len(data), maxKeyfileSize)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty file", ErrBadKeyfile)
	}
	s := string(data)
	first, _, hasNL := strings.Cut(s, "\n")
	if err := parseKeyfileHeader(first, hasNL); err != nil {
		return nil, err
	}
	if !strings.HasSuffix(s, "\n") {
		return nil, fmt.Errorf("%w: truncated (the last line is incomplete)", ErrBadKeyfile)
	}
	lines := strings.Split(s[:len(s)-1], "\n")
	if len(lines) < keyfileLines {
		return nil, fmt.Errorf("%w: truncated (%d of %d lines)", ErrBadKeyfile, len(lines), keyfileLines)
	}
	if len(lines) > keyfileLines {
		return nil, fmt.Errorf("%w: line %d: unexpected content after the last line", ErrBadKeyfile, keyfileLines+1)
	}
	for n, l := range lines {
		if strings.ContainsRune(l, '\r') {
			return nil, fmt.Errorf("%w: line %d: carriage return (was the file edited on Windows?)", ErrBadKeyfile, n+1)
		}
	}

	seedText, ok := strings.CutPrefix(lines[1], keyfileSeedKey)
	if !ok {
		return nil, fmt.Errorf("%w: line 2: want %q followed by the base64 seed", ErrBadKeyfile, keyfileSeedKey)
	}
	seed, err := base64.StdEncoding.Strict().DecodeString(seedText)
	if err != nil {
		return nil, fmt.Errorf("%w: line 2: seed is not valid base64", ErrBadKeyfile)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: line 2: seed is %d bytes, want %d", ErrBadKeyfile, len(seed), ed25519.SeedSize)
	}
	id := identityFromSeed(seed)

	idText, ok := strings.CutPrefix(lines[2], keyfileIDKey)
	if !ok {
		return nil, fmt.Errorf("%w: line 3: want %q followed by the PeerID", ErrBadKeyfile, keyfileIDKey)
	}
	written, err := ParsePeerID(idText)
	if err != nil {
		return nil, fmt.Errorf("%w: line 3: %w", ErrBadKeyfile, err)
	}
	if written != id.id {
		return nil, fmt.Errorf("%w: line 3: peer-id %s does not match the seed, which gives %s (the file was damaged or edited)",
			ErrBadKeyfile, written, id.id)
	}
	return id, nil
}

// parseKeyfileHeader checks line 1, "PEERNET IDENTITY v1". complete says
// whether the line ended in a newline.
func parseKeyfileHeader(line string, complete bool) error {
	prefix := keyfileMagic + " v"
	verText, ok := strings.CutPrefix(line, prefix)
	if !ok {
		if !complete && strings.HasPrefix(prefix, line) {
			return fmt.Errorf("%w: truncated (%d bytes)", ErrBadKeyfile, len(line))
		}
		return fmt.Errorf("%w: not a PeerNet identity keyfile (the first line is not %q)",
			ErrBadKeyfile, fmt.Sprintf("%s v%d", keyfileMagic, keyfileVersion))
	}
	if strings.HasSuffix(verText, "\r") {
		return fmt.Errorf("%w: line 1: carriage return (was the file edited on Windows?)", ErrBadKeyfile)
	}
	ver, err := strconv.ParseUint(verText, 10, 31)
	if err != nil || verText != strconv.FormatUint(ver, 10) {
		if !complete && verText == "" {
			return fmt.Errorf("%w: truncated (%d bytes)", ErrBadKeyfile, len(line))
		}
		return fmt.Errorf("%w: line 1: malformed version %q", ErrBadKeyfile, abbreviate(verText))
	}
	switch {
	case ver > keyfileVersion:
		return fmt.Errorf("%w: v%d, written by a newer PeerNet (this one reads v%d); upgrade PeerNet",
			ErrKeyfileVersion, ver, keyfileVersion)
	case ver != keyfileVersion:
		return fmt.Errorf("%w: v%d is not a known version (this PeerNet reads v%d)", ErrKeyfileVersion, ver, keyfileVersion)
	}
	return nil
}
