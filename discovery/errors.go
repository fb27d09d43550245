package discovery

import "errors"

// Errors returned by this package; match them with errors.Is.
var (
	// ErrInvalidConfig means an MDNSConfig field is out of range; the
	// message names the field.
	ErrInvalidConfig = errors.New("discovery: invalid config")
	// ErrRunning means Run was called on an MDNS that is already running.
	ErrRunning = errors.New("discovery: already running")
	// ErrNoSocket means neither an IPv4 nor an IPv6 mDNS socket could be
	// opened (port 5353 taken without address reuse, or no network).
	ErrNoSocket = errors.New("discovery: no mDNS socket")
)

// Reasons a received packet is dropped; they only reach the debug log.
var (
	errPacketTooLarge  = errors.New("discovery: packet too large")
	errMalformedPacket = errors.New("discovery: malformed packet")
)
