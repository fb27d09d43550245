// Package trust implements a PeerNet node's identity and whom it trusts: the
// Ed25519 identity and its versioned keyfile, PeerID (a peer's address, the
// public key, with one checksummed text form), the trust list persisted with
// labels and added-at times, and the lock that keeps two nodes off one data
// directory.
//
// A node's data directory holds, all mode 0600:
//
//	identity.key  the Ed25519 seed (KeyfileName; see LoadIdentity for the format)
//	trust.json    the trust list (TrustFileName; see OpenList for the format)
//	lock          flock'ed while a node runs (see LockDir)
//
// Every file is written atomically: to a temporary file in the same
// directory, fsynced, then renamed (or, for the keyfile, hard-linked, so an
// existing key is never replaced) into place, and the directory fsynced. A
// crash leaves either the old or the new file, and at worst a stray
// ".NAME.tmp-*" file that the next open removes. A node takes LockDir first
// and holds it while it uses the other files.
//
// The data dir is a trust boundary (see datadir.go): LockDir refuses a
// directory that is not owned by the process's uid or is writable by group
// or others, and no file in it is opened through a symbolic link, if it is
// not a regular file, or if another uid owns it. Such refusals match
// ErrUnsafeDataDir and name the path and the fix.
//
// Package trust imports nothing else of PeerNet.
package trust
