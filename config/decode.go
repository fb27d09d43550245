package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/host/plugin"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// decoder carries the state of one decodeFile call: the diagnostics so far
// and the names already seen, for duplicate and reference checks.
type decoder struct {
	filePath string // absolute path of the file
	dir      string // its directory
	diags    hcl.Diagnostics

	peerByLabel  map[string]*declared
	peerByID     map[trust.PeerID]*declared
	pluginByName map[string]hcl.Range
	handleOwner  map[string]handleOwner
}

// declared is a peer block seen so far.
type declared struct {
	label    string
	id       trust.PeerID // zero if the block's id is invalid
	labelRng hcl.Range
}

// handleOwner is where a handle was first exposed.
type handleOwner struct {
	plugin string
	rng    hcl.Range
}

func (d *decoder) add(diag *hcl.Diagnostic) { d.diags = append(d.diags, diag) }

// decodeFile parses and decodes src. It returns the diagnostics and the
// parser's files (for DiagError.Format); the File is meaningful only when
// diags has no errors.
func decodeFile(src []byte, filename string) (*File, hcl.Diagnostics, map[string]*hcl.File) {
	var f *File
	diags, files := decode(src, filename, func(d *decoder, root hcl.Body, start hcl.Range) {
		f = d.file(root, start)
	})
	return f, diags, files
}

// locateFile is decodeFile for Locate: it decodes only locateSpec.
func locateFile(src []byte, filename string) (Location, hcl.Diagnostics, map[string]*hcl.File) {
	var loc Location
	diags, files := decode(src, filename, func(d *decoder, root hcl.Body, start hcl.Range) {
		loc = d.locate(root, start)
	})
	return loc, diags, files
}

// decode parses src and, unless its syntax is wrong, calls body with a
// fresh decoder, the file's root body and the range of its start. It
// returns the diagnostics of both and the parser's files.
func decode(src []byte, filename string, body func(d *decoder, root hcl.Body, start hcl.Range)) (hcl.Diagnostics, map[string]*hcl.File) {
	p := hclparse.NewParser()
	hf, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		// Decoding a body the parser gave up on mostly repeats the syntax
		// error in other words.
		return diags, p.Files()
	}
	start := hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos}
	abs, err := filepath.Abs(filename)
	if err != nil {
		return append(diags, diagAt(start, "Cannot resolve the file's path",
			"Relative paths in %s cannot be resolved: %v.", filename, err)), p.Files()
	}
	d := &decoder{
		filePath:     abs,
		dir:          filepath.Dir(abs),
		diags:        diags,
		peerByLabel:  make(map[string]*declared),
		peerByID:     make(map[trust.PeerID]*declared),
		pluginByName: make(map[string]hcl.Range),
		handleOwner:  make(map[string]handleOwner),
	}
	body(d, hf.Body, start)
	return d.diags, p.Files()
}

// file decodes the whole file.
func (d *decoder) file(hb hcl.Body, start hcl.Range) *File {
	f := &File{Path: d.filePath}
	root := d.decodeBody(hb, schema, start, "The file")
	if b := root.first("node"); b != nil {
		f.Node = d.node(b)
	}
	// Peers before plugins, whatever the order in the file: allow lists
	// refer to peer labels.
	for _, b := range root.blocks["peer"] {
		f.Peers = append(f.Peers, d.peer(b))
	}
	for _, b := range root.blocks["plugin"] {
		f.Plugins = append(f.Plugins, d.plugin(b))
	}
	f.Discovery = d.discovery(root.first("discovery"))
	f.Telemetry = d.telemetry(root.first("telemetry"))
	return f
}

// locate decodes the node block's name and data_dir.
func (d *decoder) locate(hb hcl.Body, start hcl.Range) Location {
	root := d.decodeBody(hb, locateSpec, start, "The file")
	blk := root.first("node")
	if blk == nil {
		return Location{}
	}
	// The node block's attribute names are still checked: a misspelt
	// data_dir or name is then reported with the right spelling, not
	// only as missing.
	_, diags := blk.Body.Content(nodeSpec.hclSchema())
	d.diags = append(d.diags, diags...)
	return d.location(d.decodeBody(blk.Body, locateSpec.blocks[0], blk.DefRange, "The node block"))
}

// attrVal is one decoded attribute.
type attrVal struct {
	v     any                  // of the Go type the attribute's kind decodes to
	rng   hcl.Range            // the value expression
	elems []hcl.Range          // each element of a list, if written as a list literal
	pairs map[string]pairRange // each entry of a map, if written as an object literal
}

// body is a decoded block body: the attributes that decoded cleanly, and the
// nested blocks by type. Attributes that are absent, null or wrong read as
// their default.
type body struct {
	spec   *blockSpec
	def    hcl.Range // the block's header, where "missing" diagnostics point
	attrs  map[string]attrVal
	blocks map[string][]*hcl.Block
}

// decodeBody checks b against spec, decodes each attribute to its kind and
// reports unknown, missing and mistyped attributes, and repeated or missing
// nested blocks. what names the block in messages.
func (d *decoder) decodeBody(b hcl.Body, spec *blockSpec, def hcl.Range, what string) *body {
	out := &body{spec: spec, def: def, attrs: make(map[string]attrVal), blocks: make(map[string][]*hcl.Block)}
	content, diags := b.Content(spec.hclSchema())
	if spec.partial {
		content, _, diags = b.PartialContent(spec.hclSchema())
	}
	d.diags = append(d.diags, diags...)
	for _, a := range spec.attrs {
		attr, ok := content.Attributes[a.name]
		if !ok {
			if a.required {
				d.add(diagAt(def, "Missing required attribute",
					"%s needs %s, such as: %s = %s", what, a.name, a.name, a.example))
			}
			continue
		}
		if v, ok := d.value(a, attr); ok {
			out.attrs[a.name] = v
		}
	}
	for _, blk := range content.Blocks {
		out.blocks[blk.Type] = append(out.blocks[blk.Type], blk)
	}
	for _, c := range spec.blocks {
		blks := out.blocks[c.typ]
		if len(blks) == 0 && c.required {
			d.add(diagAt(def, "Missing "+c.typ+" block", "%s needs a %s block%s.", what, c.typ, c.requiredAttrs()))
		}
		if !c.multi {
			for _, dup := range blks[min(1, len(blks)):] {
				d.add(diagAt(dup.DefRange, "Duplicate "+c.typ+" block",
					"Only one %s block is allowed in %s; the first is at %s.", c.typ, what, posString(blks[0].DefRange)))
			}
		}
	}
	return out
}

// requiredAttrs lists the block's required attributes with an example
// each, for "missing block" messages.
func (b *blockSpec) requiredAttrs() string {
	var parts []string
	for _, a := range b.attrs {
		if a.required {
			parts = append(parts, fmt.Sprintf("%s = %s", a.name, a.example))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " with at least " + strings.Join(parts, " and ")
}

func (b *body) first(typ string) *hcl.Block {
	if blks := b.blocks[typ]; len(blks) > 0 {
		return blks[0]
	}
	return nil
}

func (b *body) get(name string) (attrVal, bool) {
	v, ok := b.attrs[name]
	return v, ok
}

// val is the decoded attribute, or its default.
func (b *body) val(name string) any {
	if v, ok := b.get(name); ok {
		return v.v
	}
	return b.spec.attr(name).def
}

func (b *body) str(name string) string {
	s, _ := b.val(name).(string)
	return s
}

func (b *body) dur(name string) time.Duration {
	v, _ := b.val(name).(time.Duration)
	return v
}

func (b *body) int(name string) int {
	v, _ := b.val(name).(int)
	return v
}

func (b *body) bool(name string) bool {
	v, _ := b.val(name).(bool)
	return v
}

// rng is where the attribute's value is, or the block header if the
// attribute is absent.
func (b *body) rng(name string) hcl.Range {
	if v, ok := b.get(name); ok {
		return v.rng
	}
	return b.def
}

// kindWant says what a value of kind k must look like, for type errors.
func kindWant(k kind) string {
	switch k {
	case kindString:
		return "a string"
	case kindDuration:
		return `a duration string such as "1m30s"`
	case kindInt:
		return "a whole number"
	case kindBool:
		return "true or false"
	case kindStringList:
		return `a list of strings, such as ["a", "b"]`
	case kindStringMap:
		return `a map of strings, such as { KEY = "value" }`
	case kindObject:
		return `an object, such as { key = "value" }`
	}
	return k.docName()
}

// value evaluates and decodes one attribute. It reports false, after adding
// diagnostics where the value is wrong, when the attribute yields no value.
// Null is the same as absent. Values are never converted between types: a
// number where a string belongs is an error, not its decimal text.
func (d *decoder) value(a attrSpec, attr *hcl.Attribute) (attrVal, bool) {
	rng := attr.Expr.Range()
	if diag := literalOnly(attr.Expr); diag != nil {
		d.add(diag)
		return attrVal{}, false
	}
	v, diags := attr.Expr.Value(nil)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return attrVal{}, false
	}
	if v.IsNull() {
		if a.required {
			d.add(diagAt(rng, "Missing required attribute", "%s must not be null, such as: %s = %s", a.name, a.name, a.example))
		}
		return attrVal{}, false
	}
	t := v.Type()
	wrongType := func() (attrVal, bool) {
		d.add(diagAt(rng, "Wrong type", "%s must be %s, not %s.", a.name, kindWant(a.kind), typeDesc(t)))
		return attrVal{}, false
	}
	out := attrVal{rng: rng}
	switch a.kind {
	case kindString:
		if t != cty.String {
			return wrongType()
		}
		out.v = v.AsString()
		return out, true

	case kindDuration:
		if t != cty.String {
			return wrongType()
		}
		dur, ok := d.duration(a, v.AsString(), rng)
		out.v = dur
		return out, ok

	case kindInt:
		if t != cty.Number {
			return wrongType()
		}
		bf := v.AsBigFloat()
		i, acc := bf.Int64()
		switch {
		case bf.Sign() < 0:
			d.add(diagAt(rng, "Invalid number", "%s must not be negative.", a.name))
		case bf.IsInf() || acc != big.Exact && bf.IsInt() || i > maxInt:
			d.add(diagAt(rng, "Invalid number", "%s must be at most %d.", a.name, maxInt))
		case !bf.IsInt():
			d.add(diagAt(rng, "Invalid number", "%s must be a whole number.", a.name))
		case i < a.min:
			d.add(diagAt(rng, "Invalid number", "%s must be %s.", a.name, minText(a.min)))
		default:
			out.v = int(i)
			return out, true
		}
		return attrVal{}, false

	case kindBool:
		if t != cty.Bool {
			return wrongType()
		}
		out.v = v.True()
		return out, true

	case kindStringList:
		if !t.IsTupleType() && !t.IsListType() {
			return wrongType()
		}
		exprs, ediags := hcl.ExprList(attr.Expr)
		literal := !ediags.HasErrors() && len(exprs) == v.LengthInt()
		list := make([]string, 0, v.LengthInt())
		for i, e := range v.AsValueSlice() {
			erng := rng
			if literal {
				erng = exprs[i].Range()
			}
			if !d.stringElem(a, fmt.Sprintf("[%d]", i), e, erng) {
				return attrVal{}, false
			}
			out.elems = append(out.elems, erng)
			list = append(list, e.AsString())
		}
		out.v = list
		return out, true

	case kindStringMap:
		if !t.IsObjectType() && !t.IsMapType() {
			return wrongType()
		}
		out.pairs = mapRanges(attr.Expr)
		m := v.AsValueMap()
		mv := make(map[string]string, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			erng := rng
			if p, ok := out.pairs[k]; ok {
				erng = p.value
			}
			if !d.stringElem(a, fmt.Sprintf("[%q]", k), m[k], erng) {
				return attrVal{}, false
			}
			mv[k] = m[k].AsString()
		}
		out.v = mv
		return out, true

	case kindObject:
		if !t.IsObjectType() && !t.IsMapType() {
			return wrongType()
		}
		js, err := ctyjson.Marshal(v, t)
		if err != nil {
			d.add(diagAt(rng, "Invalid value", "%s cannot be encoded as JSON: %v.", a.name, err))
			return attrVal{}, false
		}
		out.v = js
		return out, true
	}
	panic(fmt.Sprintf("config: attribute %s has unknown kind %d", a.name, int(a.kind)))
}

// stringElem reports whether element idx of a list or map attribute is a
// string, adding a diagnostic at rng if it is not.
func (d *decoder) stringElem(a attrSpec, idx string, e cty.Value, rng hcl.Range) bool {
	switch {
	case e.IsNull():
		d.add(diagAt(rng, "Wrong type", "%s%s must not be null.", a.name, idx))
	case e.Type() != cty.String:
		d.add(diagAt(rng, "Wrong type", "%s%s must be a string, not %s.", a.name, idx, typeDesc(e.Type())))
	default:
		return true
	}
	return false
}

// maxExponent bounds the binary exponent of a number literal, a little beyond
// float64's range. Formatting a number as decimal text (for JSON, say) takes
// time proportional to its exponent, and a literal such as 1e-99999999 is
// cheap to write but would take minutes to print.
const maxExponent = 1100

// literalOnly returns a diagnostic if expr is anything but a literal value:
// a string without interpolation, a number (possibly negated), a bool, null,
// or a list or object of those. Variables, function calls, operators,
// conditionals and templates have no use in this file, and refusing them
// keeps evaluation cheap and predictable.
func literalOnly(expr hcl.Expression) *hcl.Diagnostic {
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		return checkNumber(e.Val, e.SrcRange)
	case *hclsyntax.TemplateExpr:
		for _, part := range e.Parts {
			// Literal text parses as a string literal; "${4040}" as a
			// number literal, which would be converted to text.
			if lit, ok := part.(*hclsyntax.LiteralValueExpr); !ok || lit.Val.Type() != cty.String {
				return interpolation(part.Range())
			}
		}
		return nil
	case *hclsyntax.TemplateWrapExpr:
		return interpolation(e.Range())
	case *hclsyntax.UnaryOpExpr:
		if lit, ok := e.Val.(*hclsyntax.LiteralValueExpr); ok && e.Op == hclsyntax.OpNegate && lit.Val.Type() == cty.Number {
			return checkNumber(lit.Val, lit.SrcRange)
		}
	case *hclsyntax.ParenthesesExpr:
		return literalOnly(e.Expression)
	case *hclsyntax.TupleConsExpr:
		for _, el := range e.Exprs {
			if d := literalOnly(el); d != nil {
				return d
			}
		}
		return nil
	case *hclsyntax.ObjectConsExpr:
		for _, item := range e.Items {
			if d := literalOnly(item.KeyExpr); d != nil {
				return d
			}
			if d := literalOnly(item.ValueExpr); d != nil {
				return d
			}
		}
		return nil
	case *hclsyntax.ObjectConsKeyExpr:
		if hcl.ExprAsKeyword(e.Wrapped) != "" && !e.ForceNonLiteral {
			return nil // a bare name, as in { KEY = "value" }
		}
		return literalOnly(e.Wrapped)
	case *hclsyntax.ScopeTraversalExpr:
		return diagAt(e.Range(), "Variables not allowed", "Values here are literals; write the value itself, in quotes if it is a string.")
	case *hclsyntax.FunctionCallExpr:
		return diagAt(e.Range(), "Function calls not allowed", "Values here are literals; write the value itself.")
	}
	return diagAt(expr.Range(), "Expression not allowed",
		"Values here are literals: strings, numbers, true or false, null, [lists] and {objects}, without operators.")
}

func interpolation(rng hcl.Range) *hcl.Diagnostic {
	return diagAt(rng, "Interpolation not allowed",
		"Strings here are literal text, without ${ } or %%{ } sequences; write $${ or %%%%{ for a literal ${ or %%{.")
}

func checkNumber(v cty.Value, rng hcl.Range) *hcl.Diagnostic {
	if v.Type() != cty.Number || v.IsNull() || !v.IsKnown() {
		return nil
	}
	bf := v.AsBigFloat()
	if exp := bf.MantExp(nil); bf.IsInf() || exp > maxExponent || exp < -maxExponent {
		return diagAt(rng, "Number out of range", "This number is too large or too small to be used.")
	}
	return nil
}

// pairRange is where one key and value of an object literal are.
type pairRange struct{ key, value hcl.Range }

// mapRanges returns the position of each key of an object literal, or an
// empty map if expr is not one.
func mapRanges(expr hcl.Expression) map[string]pairRange {
	out := make(map[string]pairRange)
	pairs, diags := hcl.ExprMap(expr)
	if diags.HasErrors() {
		return out
	}
	for _, p := range pairs {
		k, kdiags := p.Key.Value(nil)
		if !kdiags.HasErrors() && k.Type() == cty.String && k.IsKnown() && !k.IsNull() {
			out[k.AsString()] = pairRange{key: p.Key.Range(), value: p.Value.Range()}
		}
	}
	return out
}

// typeDesc names a value's type the way the file's syntax shows it.
func typeDesc(t cty.Type) string {
	switch {
	case t == cty.String:
		return "a string"
	case t == cty.Number:
		return "a number"
	case t == cty.Bool:
		return "a bool"
	case t.IsTupleType() || t.IsListType() || t.IsSetType():
		return "a list"
	case t.IsObjectType() || t.IsMapType():
		return "an object"
	}
	return t.FriendlyName()
}

func minText(m int64) string {
	if m == 1 {
		return "greater than zero"
	}
	return fmt.Sprintf("at least %d", m)
}

// duration parses a duration attribute's text and checks its range.
func (d *decoder) duration(a attrSpec, s string, rng hcl.Range) (time.Duration, bool) {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		d.add(diagAt(rng, "Invalid duration",
			`%s = %q is not a duration: write a number followed by a unit, such as "1m30s", "500ms" or "2h" (units: ns, us, ms, s, m, h).`,
			a.name, s))
		return 0, false
	}
	if v < 0 {
		d.add(diagAt(rng, "Invalid duration", "%s must not be negative.", a.name))
		return 0, false
	}
	if int64(v) < a.min {
		d.add(diagAt(rng, "Invalid duration", "%s must be greater than zero.", a.name))
		return 0, false
	}
	return v, true
}

// node decodes the node block.
func (d *decoder) node(blk *hcl.Block) Node {
	b := d.decodeBody(blk.Body, nodeSpec, blk.DefRange, "The node block")
	loc := d.location(b)
	n := Node{
		Name:                   loc.Name,
		DataDir:                loc.DataDir,
		Listen:                 b.str("listen"),
		CallTimeout:            b.dur("call_timeout"),
		HandshakeTimeout:       b.dur("handshake_timeout"),
		PingInterval:           b.dur("ping_interval"),
		ReconnectMin:           b.dur("reconnect_min"),
		ReconnectMax:           b.dur("reconnect_max"),
		MaxMessageSize:         b.int("max_message_size"),
		MaxHandshakes:          b.int("max_handshakes"),
		MaxInflightPerPeer:     b.int("max_inflight_per_peer"),
		MaxHandshakesPerSource: b.int("max_handshakes_per_source"),
		MaxConnsPerPeer:        b.int("max_conns_per_peer"),
		MaxPeerMemory:          b.int("max_peer_memory"),
		WriteTimeout:           b.dur("write_timeout"),
		ShutdownGrace:          b.dur("shutdown_grace"),
	}
	if _, ok := b.get("listen"); ok {
		if why := checkHostPort(n.Listen, false, 0); why != "" {
			d.add(diagAt(b.rng("listen"), "Invalid listen address",
				`listen = %q %s; write host:port, such as "127.0.0.1:4040", or ":4040" for every interface.`, n.Listen, why))
		}
	}

	lvl := b.str("log_level")
	n.LogLevel = logLevels[lvl]
	if n.LogLevel == hclog.NoLevel {
		d.add(diagAt(b.rng("log_level"), "Unknown log level",
			"log_level = %q is not a log level; use one of %s.", lvl, quoteList(logLevelNames)))
	}
	n.LogFormat = LogFormat(b.str("log_format"))
	if n.LogFormat != LogFormatText && n.LogFormat != LogFormatJSON {
		d.add(diagAt(b.rng("log_format"), "Unknown log format",
			"log_format = %q is not a log format; use %q or %q.", n.LogFormat, LogFormatText, LogFormatJSON))
	}

	d.checkOrder(b, "reconnect_min", "reconnect_max")
	return n
}

// location decodes and checks the node block's name and data_dir: all
// that Locate reads of a file.
func (d *decoder) location(b *body) Location {
	loc := Location{Name: b.str("name")}
	if _, ok := b.get("name"); ok {
		if why := checkName(loc.Name); why != "" {
			d.add(diagAt(b.rng("name"), "Invalid node name", "name = %q %s.", loc.Name, why))
		}
	}
	if dir, ok := b.get("data_dir"); ok {
		if s := dir.v.(string); s == "" {
			d.add(diagAt(dir.rng, "Invalid data_dir", "data_dir must not be empty; it is where the node keeps its identity key and trust list."))
		} else {
			loc.DataDir = d.path(s)
		}
	}
	return loc
}

var logLevelNames = []string{"trace", "debug", "info", "warn", "error"}

var logLevels = map[string]hclog.Level{
	"trace": hclog.Trace,
	"debug": hclog.Debug,
	"info":  hclog.Info,
	"warn":  hclog.Warn,
	"error": hclog.Error,
}

// checkOrder reports a lower bound above its upper bound, pointing at
// whichever of the two the file sets (the upper one if both).
func (d *decoder) checkOrder(b *body, lo, hi string) {
	vlo, vhi := b.dur(lo), b.dur(hi)
	if vhi >= vlo {
		return
	}
	_, hiSet := b.get(hi)
	rng := b.rng(lo)
	if hiSet {
		rng = b.rng(hi)
	}
	d.add(diagAt(rng, "Invalid duration", "%s (%s) is below %s (%s); raise %s or lower %s.",
		hi, formatDuration(vhi), lo, formatDuration(vlo), hi, lo))
}

// peer decodes a peer block.
func (d *decoder) peer(blk *hcl.Block) Peer {
	label, labelRng := blk.Labels[0], blk.LabelRanges[0]
	b := d.decodeBody(blk.Body, peerSpec, blk.DefRange, fmt.Sprintf("peer %q", label))
	p := Peer{Label: label, Address: b.str("address")}

	switch err := trust.ValidateLabel(label); {
	case label == "":
		d.add(diagAt(labelRng, "Invalid peer label", "A peer's label must not be empty; allow lists and logs refer to the peer by it."))
	case err != nil:
		d.add(diagAt(labelRng, "Invalid peer label", "Peer label %q is not allowed: %s.", label, reason(err, trust.ErrBadLabel)))
	}
	if first, dup := d.peerByLabel[label]; dup && label != "" {
		d.add(diagAt(labelRng, "Duplicate peer label",
			"A peer labelled %q is already declared at %s; each peer block needs its own label.", label, posString(first.labelRng)))
	}

	if idv, set := b.get("id"); set {
		s := idv.v.(string)
		id, err := trust.ParsePeerID(s)
		switch {
		case err != nil:
			d.add(diagAt(idv.rng, "Invalid peer ID",
				`id = %q is not a valid peer ID: %s. Copy it again from "peernet-host id" on that peer.`, s, reason(err, trust.ErrBadPeerID)))
		case d.peerByID[id] != nil:
			first := d.peerByID[id]
			d.add(diagAt(idv.rng, "Duplicate peer ID",
				"Peer %q has the same id as peer %q at %s; declare each peer once.", label, first.label, posString(first.labelRng)))
		default:
			p.ID = id
		}
	}

	if _, set := b.get("address"); set {
		if why := checkHostPort(p.Address, true, 1); why != "" {
			d.add(diagAt(b.rng("address"), "Invalid peer address",
				`address = %q %s; write host:port, such as "192.0.2.7:4040" or "beta.example.net:4040".`, p.Address, why))
		}
	}

	if _, dup := d.peerByLabel[label]; !dup {
		d.peerByLabel[label] = &declared{label: label, id: p.ID, labelRng: labelRng}
	}
	if !p.ID.IsZero() {
		d.peerByID[p.ID] = &declared{label: label, id: p.ID, labelRng: labelRng}
	}
	return p
}

// reason strips the package's sentinel text from err, leaving the reason
// after it, for a message that already says what was wrong.
func reason(err, sentinel error) string {
	return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
}

// plugin decodes a plugin block.
func (d *decoder) plugin(blk *hcl.Block) plugin.Config {
	name, nameRng := blk.Labels[0], blk.LabelRanges[0]
	b := d.decodeBody(blk.Body, pluginSpec, blk.DefRange, fmt.Sprintf("plugin %q", name))
	p := plugin.Config{
		Name:         name,
		SHA256:       strings.ToLower(b.str("sha256")),
		GracePeriod:  b.dur("grace_period"),
		PluginConfig: []byte("{}"),
	}
	if err := plugin.CheckName(name); err != nil {
		d.add(diagAt(nameRng, "Invalid plugin name", "Plugin name %q %s.", name, reason(err, plugin.ErrBadName)))
	} else if first, dup := d.pluginByName[name]; dup {
		d.add(diagAt(nameRng, "Duplicate plugin", "A plugin named %q is already declared at %s.", name, posString(first)))
	} else {
		d.pluginByName[name] = nameRng
	}

	if cmd, set := b.get("command"); set {
		p.Path = d.command(cmd.v.(string), cmd.rng)
	}
	if args, set := b.get("args"); set {
		for i, a := range args.v.([]string) {
			if strings.ContainsRune(a, 0) {
				d.add(diagAt(args.elems[i], "Invalid argument", "args[%d] contains a NUL character, which a process argument cannot hold.", i))
			}
		}
		if l := args.v.([]string); len(l) > 0 {
			p.Args = l
		}
	}
	if env, set := b.get("env"); set {
		m := env.v.(map[string]string)
		for _, k := range sortedKeys(m) {
			rng := env.rng
			if pr, ok := env.pairs[k]; ok {
				rng = pr.key
			}
			switch {
			case k == "" || strings.ContainsAny(k, "=\x00"):
				d.add(diagAt(rng, "Invalid environment variable",
					"env key %q is not a variable name: it must be non-empty and contain neither '=' nor NUL.", k))
			case strings.ContainsRune(m[k], 0):
				d.add(diagAt(rng, "Invalid environment variable", "env value of %s contains a NUL character.", k))
			}
		}
		for _, k := range sortedKeys(m) {
			p.Env = append(p.Env, k+"="+m[k])
		}
	}
	if _, set := b.get("sha256"); set {
		if why := checkSHA256(p.SHA256); why != "" {
			d.add(diagAt(b.rng("sha256"), "Invalid sha256",
				`sha256 must be the 64 hexadecimal digits printed by "sha256sum" for the plugin binary; %s.`, why))
		}
	}
	if cfg, set := b.get("config"); set {
		p.PluginConfig = cfg.v.([]byte)
	}

	rb := &body{spec: restartSpec}
	if r := b.first("restart"); r != nil {
		rb = d.decodeBody(r.Body, restartSpec, r.DefRange, fmt.Sprintf("The restart block of plugin %q", name))
		d.checkOrder(rb, "backoff_min", "backoff_max")
	}
	p.Restart = plugin.RestartPolicy{
		MaxCrashes: rb.int("max_crashes"),
		Window:     rb.dur("window"),
		BackoffMin: rb.dur("backoff_min"),
		BackoffMax: rb.dur("backoff_max"),
	}

	for _, h := range b.blocks["handle"] {
		p.Handles = append(p.Handles, d.handle(h, name))
	}
	return p
}

// command resolves a plugin command and checks that it is an executable
// file, returning its absolute path or "" after a diagnostic.
func (d *decoder) command(s string, rng hcl.Range) string {
	if s == "" {
		d.add(diagAt(rng, "Invalid plugin command", "command must name the plugin's executable."))
		return ""
	}
	path := d.path(s)
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.add(diagAt(rng, "Plugin binary not found",
			"command = %q resolves to %s, which does not exist. A relative command is resolved against the configuration file's directory, %s.",
			s, path, d.dir))
	case err != nil:
		d.add(diagAt(rng, "Plugin binary unusable", "command = %q: %v.", s, err))
	case fi.IsDir():
		d.add(diagAt(rng, "Plugin binary unusable", "command = %q resolves to %s, which is a directory, not an executable file.", s, path))
	case !fi.Mode().IsRegular():
		d.add(diagAt(rng, "Plugin binary unusable", "command = %q resolves to %s, which is not a regular file (%s).", s, path, fi.Mode().Type()))
	case fi.Mode().Perm()&0o111 == 0:
		d.add(diagAt(rng, "Plugin binary not executable",
			"%s is not executable (mode %s); make it so with: chmod +x %s", path, fi.Mode().Perm(), path))
	default:
		return path
	}
	return ""
}

// handle decodes a handle block of plugin pluginName.
func (d *decoder) handle(blk *hcl.Block, pluginName string) plugin.Handle {
	name, nameRng := blk.Labels[0], blk.LabelRanges[0]
	b := d.decodeBody(blk.Body, handleSpec, blk.DefRange, fmt.Sprintf("handle %q of plugin %q", name, pluginName))
	h := plugin.Handle{Name: name}
	h.MaxConcurrent, h.Timeout = b.int("max_concurrent"), b.dur("timeout")
	switch {
	case wire.CheckHandle(name) != nil:
		d.add(diagAt(nameRng, "Invalid handle name",
			"Handle name %q must be 1 to %d bytes of UTF-8, as the wire protocol carries it.", name, wire.MaxHandleLen))
	default:
		if first, dup := d.handleOwner[name]; dup {
			d.add(diagAt(nameRng, "Duplicate handle",
				"Handle %q is already exposed by plugin %q at %s; a handle can be served by one plugin only.",
				name, first.plugin, posString(first.rng)))
		} else {
			d.handleOwner[name] = handleOwner{plugin: pluginName, rng: nameRng}
		}
	}

	if allow, set := b.get("allow"); set {
		var ids []trust.PeerID
		for i, s := range allow.v.([]string) {
			if id := d.allowed(s, allow.elems[i]); !id.IsZero() {
				ids = append(ids, id)
			}
		}
		h.Allow = host.AllowOnly(ids...)
	}
	return h
}

// allowed resolves one allow-list entry: a declared peer's label, else a
// PeerID. It returns the zero PeerID if s is neither (after a diagnostic) or
// names a declared peer whose own id is invalid (already reported).
func (d *decoder) allowed(s string, rng hcl.Range) trust.PeerID {
	if p, ok := d.peerByLabel[s]; ok {
		return p.id
	}
	id, err := trust.ParsePeerID(s)
	if err == nil {
		return id
	}
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(s)), trust.PeerIDPrefix) {
		d.add(diagAt(rng, "Invalid peer ID",
			"allow entry %q is not a declared peer label, and not a valid peer ID: %s.", s, reason(err, trust.ErrBadPeerID)))
		return trust.PeerID{}
	}
	labels := make([]string, 0, len(d.peerByLabel))
	for l := range d.peerByLabel {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	hint := "No peer blocks are declared."
	if len(labels) > 0 {
		hint = "Declared labels: " + quoteList(labels) + "."
	}
	if sug := suggest(s, labels); sug != "" {
		hint = fmt.Sprintf("Did you mean %q? %s", sug, hint)
	}
	d.add(diagAt(rng, "Unknown peer label",
		"allow entry %q is not the label of any peer block. %s To allow a peer that is not declared here, give its peer ID (pn1…).", s, hint))
	return trust.PeerID{}
}

// discovery decodes the discovery block, or returns the defaults if blk is nil.
func (d *decoder) discovery(blk *hcl.Block) Discovery {
	b := &body{spec: discoverySpec}
	if blk != nil {
		b = d.decodeBody(blk.Body, discoverySpec, blk.DefRange, "The discovery block")
	}
	disc := Discovery{MDNS: b.bool("mdns")}
	if ifs, set := b.get("interfaces"); set {
		for i, name := range ifs.v.([]string) {
			if name == "" {
				d.add(diagAt(ifs.elems[i], "Invalid interface name", "interfaces[%d] is empty; name a network interface such as \"eth0\".", i))
			}
		}
		if l := ifs.v.([]string); len(l) > 0 {
			disc.Interfaces = l
		}
	}
	return disc
}

// telemetry decodes the telemetry block, or returns the defaults if blk is nil.
func (d *decoder) telemetry(blk *hcl.Block) Telemetry {
	b := &body{spec: telemetrySpec}
	if blk != nil {
		b = d.decodeBody(blk.Body, telemetrySpec, blk.DefRange, "The telemetry block")
	}
	t := Telemetry{MetricsListen: b.str("metrics_listen")}
	if _, set := b.get("metrics_listen"); set {
		if why := checkHostPort(t.MetricsListen, false, 1); why != "" {
			d.add(diagAt(b.rng("metrics_listen"), "Invalid metrics address",
				`metrics_listen = %q %s; write host:port, such as "127.0.0.1:9090".`, t.MetricsListen, why))
		}
	}
	return t
}

// path makes s absolute, relative to the configuration file's directory.
func (d *decoder) path(s string) string {
	if filepath.IsAbs(s) {
		return filepath.Clean(s)
	}
	return filepath.Join(d.dir, s)
}

// checkName returns why s is not a valid node or plugin name, or "".
func checkName(s string) string {
	const maxNameLen = 63
	if s == "" || len(s) > maxNameLen {
		return fmt.Sprintf("must be 1 to %d characters long", maxNameLen)
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '-' || r == '_' || r == '.')
		if !ok {
			return "must be letters, digits, '-', '_' and '.', starting with a letter or digit"
		}
	}
	return ""
}

// checkHostPort returns why s is not a usable host:port, or "". needHost
// requires a host; the port must be a number from minPort to 65535.
func checkHostPort(s string, needHost bool, minPort int) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "is not host:port (" + ae.Err + ")"
		}
		return "is not host:port"
	}
	if needHost && host == "" {
		return "has no host"
	}
	if strings.ContainsAny(host, " \t/") {
		return "has an invalid host"
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || int(n) < minPort {
		return fmt.Sprintf("has an invalid port (want a number from %d to 65535)", minPort)
	}
	return ""
}

// checkSHA256 returns why s is not 64 lowercase hex digits, or "".
func checkSHA256(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			r, _ := utf8.DecodeRuneInString(s[i:])
			return fmt.Sprintf("%q at position %d is not a hexadecimal digit", r, utf8.RuneCountInString(s[:i])+1)
		}
	}
	if len(s) != 64 {
		return fmt.Sprintf("this has %d digits", len(s))
	}
	return ""
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// suggest returns the candidate closest to s if it is within two edits,
// the same threshold HCL uses for its own suggestions.
func suggest(s string, candidates []string) string {
	best, bestDist := "", 3
	if len(s) > 2*trust.MaxLabelLen {
		return ""
	}
	for _, c := range candidates {
		if dist := editDistance(s, c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
