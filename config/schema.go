package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/host/plugin"
	"github.com/peernet/peernet/wire"
)

// Defaults that neither host nor host/plugin defines. Every default the file
// format has is in the schema below; these are exported for programs that
// build a File, or a plugin supervisor, without a file.
const (
	DefaultLogLevel      = "info"
	DefaultLogFormat     = LogFormatText
	DefaultShutdownGrace = 10 * time.Second
)

// kind is the type of an attribute's value, as written and as decoded.
type kind int

const (
	kindString     kind = iota // string
	kindDuration               // string such as "1m30s" -> time.Duration
	kindInt                    // whole number -> int
	kindBool                   // bool
	kindStringList             // list of strings -> []string
	kindStringMap              // map of strings -> map[string]string
	kindObject                 // any object -> JSON bytes
)

// docName is how the documentation's Type column names each kind.
func (k kind) docName() string {
	switch k {
	case kindString:
		return "string"
	case kindDuration:
		return "duration"
	case kindInt:
		return "number"
	case kindBool:
		return "bool"
	case kindStringList:
		return "list of string"
	case kindStringMap:
		return "map of string"
	case kindObject:
		return "object"
	}
	panic(fmt.Sprintf("config: unknown kind %d", int(k)))
}

// attrSpec describes one attribute. The decoder, the defaults and the
// documentation test all read it, so it is the single source of truth.
type attrSpec struct {
	name     string
	kind     kind
	required bool
	// def is the default, of the Go type kind decodes to (string,
	// time.Duration, int, bool); nil for required attributes and for those
	// whose absence means "none" (see none).
	def any
	// none, for an optional attribute without a default, says what absence
	// means; the documentation's Default column shows it.
	none string
	// min is the smallest accepted value of a kindInt or kindDuration
	// attribute (nanoseconds for durations); negative values are always
	// refused.
	min int64
	// example is a value shown when a required attribute is missing.
	example string
}

// docDefault is the text of the documentation's Default column.
func (a attrSpec) docDefault() string {
	switch {
	case a.required:
		return "required"
	case a.def == nil:
		return a.none
	}
	switch v := a.def.(type) {
	case string:
		return "`" + strconv.Quote(v) + "`"
	case time.Duration:
		return "`" + strconv.Quote(formatDuration(v)) + "`"
	case int:
		return "`" + strconv.Itoa(v) + "`"
	case bool:
		return "`" + strconv.FormatBool(v) + "`"
	}
	panic(fmt.Sprintf("config: attribute %s: default of unsupported type %T", a.name, a.def))
}

// blockSpec describes one block type and its body.
type blockSpec struct {
	typ string
	// label names the block's one label ("" for none), e.g. "NAME".
	label string
	// multi allows the block to appear more than once.
	multi bool
	// required makes the block mandatory.
	required bool
	// partial leaves attributes and blocks the spec does not list
	// unchecked, for a spec that decodes only part of a block (locateSpec).
	partial bool
	attrs   []attrSpec
	blocks  []*blockSpec
}

// hclSchema is the body schema HCL checks the block's body against. Required
// attributes are checked by the decoder instead, to point at the block and
// suggest a value.
func (b *blockSpec) hclSchema() *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, a := range b.attrs {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: a.name})
	}
	for _, c := range b.blocks {
		h := hcl.BlockHeaderSchema{Type: c.typ}
		if c.label != "" {
			h.LabelNames = []string{c.label}
		}
		s.Blocks = append(s.Blocks, h)
	}
	return s
}

func (b *blockSpec) attr(name string) attrSpec {
	for _, a := range b.attrs {
		if a.name == name {
			return a
		}
	}
	panic("config: no attribute " + name + " in block " + b.typ)
}

// schema is the whole file format. The root block has no type of its own.
var schema = &blockSpec{
	blocks: []*blockSpec{nodeSpec, peerSpec, pluginSpec, discoverySpec, telemetrySpec},
}

var nodeSpec = &blockSpec{
	typ:      "node",
	required: true,
	attrs: []attrSpec{
		{name: "name", kind: kindString, required: true, example: `"alpha"`},
		{name: "data_dir", kind: kindString, required: true, example: `"/var/lib/peernet/alpha"`},
		{name: "listen", kind: kindString, def: host.DefaultListenAddr},
		{name: "log_level", kind: kindString, def: DefaultLogLevel},
		{name: "log_format", kind: kindString, def: string(DefaultLogFormat)},
		{name: "call_timeout", kind: kindDuration, def: host.DefaultCallTimeout, min: 1},
		{name: "handshake_timeout", kind: kindDuration, def: host.DefaultHandshakeTimeout, min: 1},
		{name: "ping_interval", kind: kindDuration, def: host.DefaultPingInterval, min: 1},
		{name: "reconnect_min", kind: kindDuration, def: host.DefaultReconnectMin, min: 1},
		{name: "reconnect_max", kind: kindDuration, def: host.DefaultReconnectMax, min: 1},
		{name: "max_message_size", kind: kindInt, def: wire.DefaultMaxMessageSize, min: host.MinMessageSize},
		{name: "max_handshakes", kind: kindInt, def: host.DefaultMaxHandshakes, min: 1},
		{name: "max_inflight_per_peer", kind: kindInt, def: host.DefaultMaxInflightPerPeer, min: 1},
		{name: "max_handshakes_per_source", kind: kindInt, def: host.DefaultMaxHandshakesPerSource, min: 1},
		{name: "max_conns_per_peer", kind: kindInt, def: host.DefaultMaxConnsPerPeer, min: 1},
		{name: "max_peer_memory", kind: kindInt, def: host.DefaultMaxPeerMemory, min: 1},
		{name: "write_timeout", kind: kindDuration, def: host.DefaultWriteTimeout, min: 1},
		{name: "shutdown_grace", kind: kindDuration, def: DefaultShutdownGrace},
	},
}

// locateSpec is the part of the file that Locate decodes: the node block's
// name and data_dir, with nodeSpec's own attribute specs, in a root whose
// other blocks are left alone.
var locateSpec = &blockSpec{
	partial: true,
	blocks: []*blockSpec{{
		typ:      nodeSpec.typ,
		required: true,
		partial:  true,
		attrs:    []attrSpec{nodeSpec.attr("name"), nodeSpec.attr("data_dir")},
	}},
}

var peerSpec = &blockSpec{
	typ:   "peer",
	label: "LABEL",
	multi: true,
	attrs: []attrSpec{
		{name: "id", kind: kindString, required: true, example: `"pn1…" (the output of "peernet-host id" on that peer)`},
		{name: "address", kind: kindString, none: "none (learnt from discovery or the peer dialling in)"},
	},
}

var restartSpec = &blockSpec{
	typ: "restart",
	attrs: []attrSpec{
		{name: "max_crashes", kind: kindInt, def: plugin.DefaultMaxCrashes},
		{name: "window", kind: kindDuration, def: plugin.DefaultCrashWindow, min: 1},
		{name: "backoff_min", kind: kindDuration, def: plugin.DefaultBackoffMin, min: 1},
		{name: "backoff_max", kind: kindDuration, def: plugin.DefaultBackoffMax, min: 1},
	},
}

var handleSpec = &blockSpec{
	typ:   "handle",
	label: "NAME",
	multi: true,
	attrs: []attrSpec{
		{name: "allow", kind: kindStringList, none: "none (every trusted peer)"},
		{name: "max_concurrent", kind: kindInt, def: host.DefaultMaxConcurrent, min: 1},
		{name: "timeout", kind: kindDuration, none: "none (the caller's deadline only)", min: 1},
	},
}

var pluginSpec = &blockSpec{
	typ:   "plugin",
	label: "NAME",
	multi: true,
	attrs: []attrSpec{
		{name: "command", kind: kindString, required: true, example: `"./bin/echo"`},
		{name: "args", kind: kindStringList, none: "`[]`"},
		{name: "env", kind: kindStringMap, none: "`{}`"},
		{name: "sha256", kind: kindString, required: true, example: `"…" (the output of "sha256sum" on the binary)`},
		{name: "config", kind: kindObject, none: "`{}`"},
		{name: "grace_period", kind: kindDuration, def: plugin.DefaultGracePeriod},
	},
	blocks: []*blockSpec{restartSpec, handleSpec},
}

var discoverySpec = &blockSpec{
	typ: "discovery",
	attrs: []attrSpec{
		{name: "mdns", kind: kindBool, def: false},
		{name: "interfaces", kind: kindStringList, none: "`[]` (all multicast interfaces)"},
	},
}

var telemetrySpec = &blockSpec{
	typ: "telemetry",
	attrs: []attrSpec{
		{name: "metrics_listen", kind: kindString, none: "none (no metrics endpoint)"},
	},
}

// maxInt bounds every number attribute; nothing in the file format needs
// more, and it keeps int conversions exact on every platform.
const maxInt = math.MaxInt32

// formatDuration prints d the way an operator writes it: "1m" rather than
// Go's "1m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
