package host

import (
	"net"
	"net/netip"
	"testing"
)

// Per-source limits count an IPv4 address alone and an IPv6 address by
// its /64, the block one host usually holds.
func TestAdmissionSource(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want string
	}{
		{"192.0.2.7:4000", "192.0.2.7/32"},
		{"[::ffff:192.0.2.7]:4000", "192.0.2.7/32"},
		{"[2001:db8:1:2:aaaa::1]:4000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:5000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:4000", "2001:db8:1:3::/64"},
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		got := source(net.TCPAddrFromAddrPort(ap))
		if got.String() != tc.want {
			t.Errorf("source(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}
