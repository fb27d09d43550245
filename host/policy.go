package host

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/peernet/peernet/trust"
)

// AllowList says which trusted peers may use an exposed handle. It has two
// explicit states, built by AllowEveryone and AllowOnly: "every trusted peer"
// and "exactly these peers", where "these" may be none. The states never
// depend on whether a slice is nil, so no comparison can mistake one for the
// other (a handle opened to everyone by a reload that meant to close it).
//
// The zero value is AllowEveryone. An AllowList is immutable and safe to
// share between goroutines.
type AllowList struct {
	only  bool
	peers []trust.PeerID // sorted, without duplicates; meaningful only with only
}

// AllowEveryone admits every peer on the node's trust list.
func AllowEveryone() AllowList { return AllowList{} }

// AllowOnly admits exactly the given peers, and no one when none is given.
// Duplicates are ignored; the caller keeps peers.
func AllowOnly(peers ...trust.PeerID) AllowList {
	p := slices.Clone(peers)
	slices.SortFunc(p, comparePeers)
	return AllowList{only: true, peers: slices.Compact(p)}
}

func comparePeers(a, b trust.PeerID) int {
	ka, kb := a.Bytes(), b.Bytes()
	return bytes.Compare(ka[:], kb[:])
}

// Everyone reports whether a admits every trusted peer.
func (a AllowList) Everyone() bool { return !a.only }

// Peers returns the admitted peers in a fixed order, or nil when a admits
// everyone (tell that from "no one" with Everyone, not by nil). The caller
// owns the slice.
func (a AllowList) Peers() []trust.PeerID {
	if !a.only {
		return nil
	}
	return append([]trust.PeerID{}, a.peers...)
}

// Allows reports whether a admits peer.
func (a AllowList) Allows(peer trust.PeerID) bool {
	if !a.only {
		return true
	}
	_, found := slices.BinarySearchFunc(a.peers, peer, comparePeers)
	return found
}

// Equal reports whether a and b admit the same peers.
func (a AllowList) Equal(b AllowList) bool {
	return a.only == b.only && slices.Equal(a.peers, b.peers)
}

// String describes a for logs and reload reports: "every trusted peer",
// "no peer", or the admitted PeerIDs in short form.
func (a AllowList) String() string {
	switch {
	case !a.only:
		return "every trusted peer"
	case len(a.peers) == 0:
		return "no peer"
	}
	s := make([]string, len(a.peers))
	for i, p := range a.peers {
		s[i] = p.Short()
	}
	return strings.Join(s, ", ")
}

// allowJSON is AllowList's JSON form. The state is a field of its own, so
// that "every trusted peer" never depends on a missing or null list.
type allowJSON struct {
	Everyone bool           `json:"everyone"`
	Peers    []trust.PeerID `json:"peers"`
}

// MarshalJSON encodes a as {"everyone":true,"peers":[]} or
// {"everyone":false,"peers":[...]}.
func (a AllowList) MarshalJSON() ([]byte, error) {
	return json.Marshal(allowJSON{Everyone: !a.only, Peers: append([]trust.PeerID{}, a.peers...)})
}

// UnmarshalJSON decodes the form MarshalJSON writes; a list of peers with
// "everyone" set is an error, not a choice between them.
func (a *AllowList) UnmarshalJSON(b []byte) error {
	var j allowJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.Everyone {
		if len(j.Peers) > 0 {
			return errors.New("host: allow list names peers and everyone")
		}
		*a = AllowEveryone()
		return nil
	}
	*a = AllowOnly(j.Peers...)
	return nil
}
