package host_test

import (
	"encoding/json"
	"testing"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/trust"
)

// TestAllowListStates checks that the three kinds of allow list never
// compare equal to one another, survive a JSON round trip, and admit whom
// they say.
func TestAllowListStates(t *testing.T) {
	a := trust.MustParsePeerID("pn1byhraeiscmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha")
	b := trust.MustParsePeerID("pn1dqor4hzaeercgjbfeytsqkjkfmwc2lrpgaytemzugu3doobzhi5v7k2zlu")
	lists := []struct {
		name  string
		list  host.AllowList
		admit []bool // a, b
	}{
		{"everyone", host.AllowEveryone(), []bool{true, true}},
		{"zero value", host.AllowList{}, []bool{true, true}},
		{"no one", host.AllowOnly(), []bool{false, false}},
		{"no one from nil", host.AllowOnly(nil...), []bool{false, false}},
		{"a", host.AllowOnly(a, a), []bool{true, false}},
		{"a and b", host.AllowOnly(b, a), []bool{true, true}},
	}
	for _, x := range lists {
		for i, id := range []trust.PeerID{a, b} {
			if got := x.list.Allows(id); got != x.admit[i] {
				t.Errorf("%s: Allows(peer %d) = %v", x.name, i, got)
			}
		}
		for _, y := range lists {
			same := x.list.String() == y.list.String()
			if got := x.list.Equal(y.list); got != same {
				t.Errorf("%s.Equal(%s) = %v, want %v", x.name, y.name, got, same)
			}
		}
		j, err := json.Marshal(x.list)
		if err != nil {
			t.Fatal(err)
		}
		var back host.AllowList
		if err := json.Unmarshal(j, &back); err != nil || !back.Equal(x.list) {
			t.Errorf("%s: JSON %s decodes to %v, %v", x.name, j, back, err)
		}
	}
	if host.AllowEveryone().Equal(host.AllowOnly()) {
		t.Fatal("everyone equals no one")
	}
	var bad host.AllowList
	if err := json.Unmarshal([]byte(`{"everyone":true,"peers":["`+a.String()+`"]}`), &bad); err == nil {
		t.Error("a list naming peers and everyone decoded")
	}
}
