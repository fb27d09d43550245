package trust

import "errors"

// Errors returned by this package; match them with errors.Is. Each is wrapped
// with the file or directory concerned and, where there is one, the fix.
var (
	// ErrBadPeerID means a PeerID's text or bytes are malformed.
	ErrBadPeerID = errors.New("trust: bad peer id")

	// ErrBadKeyfile means an identity keyfile is not a regular file, is
	// empty, truncated, too large, not a PeerNet keyfile, or internally
	// inconsistent (its peer-id line does not match its seed).
	ErrBadKeyfile = errors.New("trust: bad identity keyfile")

	// ErrKeyfileVersion means an identity keyfile has a format version this
	// build cannot read, usually because a newer PeerNet wrote it.
	ErrKeyfileVersion = errors.New("trust: unsupported identity keyfile version")

	// ErrKeyfilePermissions means an identity keyfile is readable or writable
	// by group or others; it is refused, like ssh refuses such a private key.
	ErrKeyfilePermissions = errors.New("trust: identity keyfile permissions too open")

	// ErrBadTrustFile means a persisted trust list is corrupt, too large, or
	// of an unknown version. It is never treated as an empty list.
	ErrBadTrustFile = errors.New("trust: bad trust file")

	// ErrBadLabel means a trust-list label is too long or contains characters
	// that are not printable.
	ErrBadLabel = errors.New("trust: bad label")

	// ErrUnsafeDataDir means the data dir, or a file in it, may have been
	// planted or changed by another user, so it is not used: the directory
	// is not owned by this process's uid or is writable by group or others;
	// a file in it is a symbolic link or owned by another uid. The error
	// names the path, what is wrong and the fix.
	ErrUnsafeDataDir = errors.New("trust: unsafe data dir")

	// ErrDirLocked means another PeerNet node, in this process or another,
	// holds the data directory's lock.
	ErrDirLocked = errors.New("trust: data dir locked")
)
