package config

import (
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/host/plugin"
	"github.com/peernet/peernet/trust"
)

// File is a decoded, validated configuration file. Every default is applied
// and every path is absolute. A File is plain data: the caller owns it and may
// read it from several goroutines.
type File struct {
	// Path is the absolute path of the file; relative paths in it were
	// resolved against its directory.
	Path string

	Node  Node
	Peers []Peer // in file order
	// Plugins are the plugin blocks, in file order, as the supervisor
	// takes them: Path is the absolute path of an existing executable, Env
	// the sorted "KEY=value" pairs of the env map, PluginConfig the config
	// object as JSON ("{}" when the file sets none), and each handle's
	// Allow says explicitly whether every trusted peer or only the listed
	// ones (possibly none) may use it.
	Plugins   []plugin.Config
	Discovery Discovery
	Telemetry Telemetry
}

// LogFormat is how the node writes its logs.
type LogFormat string

// The log formats log_format accepts.
const (
	LogFormatText LogFormat = "text" // human-readable lines
	LogFormatJSON LogFormat = "json" // one JSON object per line
)

// Node is the node block: who this node is and how it behaves on the network.
// The fields mirror host.Config; see HostConfig.
type Node struct {
	Name    string
	DataDir string // absolute
	Listen  string // host:port; port 0 picks a free port

	LogLevel  hclog.Level // Trace, Debug, Info, Warn or Error
	LogFormat LogFormat

	CallTimeout      time.Duration
	HandshakeTimeout time.Duration
	PingInterval     time.Duration
	ReconnectMin     time.Duration
	ReconnectMax     time.Duration

	MaxMessageSize     int
	MaxHandshakes      int
	MaxInflightPerPeer int

	MaxHandshakesPerSource int
	MaxConnsPerPeer        int
	MaxPeerMemory          int
	WriteTimeout           time.Duration

	// ShutdownGrace bounds how long the daemon lets calls in flight finish
	// after SIGTERM before it closes the node; 0 means close at once.
	ShutdownGrace time.Duration
}

// Peer is a peer block: a peer this node trusts and, if Address is set,
// dials.
type Peer struct {
	Label   string // the block label; unique in the file
	ID      trust.PeerID
	Address string // host:port, or "" if the address comes from discovery
}

// Discovery is the discovery block.
type Discovery struct {
	MDNS       bool     // announce this node and browse for peers with mDNS
	Interfaces []string // interface names; nil means every multicast interface
}

// Telemetry is the telemetry block.
type Telemetry struct {
	// MetricsListen is the host:port of the Prometheus metrics endpoint, or
	// "" for none.
	MetricsListen string
}

// Load reads and decodes the configuration file at path. Relative paths in
// the file are resolved against the file's directory, and each plugin's
// command must exist and be executable. Diagnostics name the file as path
// is written.
//
// A problem with the file's content is returned as a *DiagError (matching
// ErrInvalid) listing every problem found; a file that cannot be read is
// returned as the *fs.PathError, wrapped.
func Load(path string) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: reading configuration: %w", err)
	}
	return Parse(src, path)
}

// Parse decodes a configuration from src as if read from filename, which
// names the file in diagnostics and whose directory anchors relative paths.
// It reads the file system only to check plugin commands. Errors are as for
// Load; a *DiagError keeps a reference to src, for Format.
func Parse(src []byte, filename string) (*File, error) {
	f, diags, files := decodeFile(src, filename)
	if e := newDiagError(diags, files); e != nil {
		return nil, e
	}
	return f, nil
}

// Location is what a configuration file says about where its node keeps
// its state: enough to find the node's identity and its control socket.
type Location struct {
	Name    string // the node block's name
	DataDir string // the node block's data_dir, absolute
}

// Locate reads only the node block's name and data_dir from the file at
// path, by the same rules as Load: data_dir relative to the file's
// directory, the same checks. Beyond its syntax and the node block's
// attribute names, the rest of the file is not checked, so Locate succeeds
// on a file that Load refuses because, say, a plugin's binary is missing;
// that is what lets peernet-host reach a running node whatever has since
// happened to its file. Errors are as for Load.
func Locate(path string) (Location, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return Location{}, fmt.Errorf("config: reading configuration: %w", err)
	}
	loc, diags, files := locateFile(src, path)
	if e := newDiagError(diags, files); e != nil {
		return Location{}, e
	}
	return loc, nil
}

// HostConfig returns the host.Config for the node block, with logger as the
// node's logger. It is a fresh value the caller owns. Logging options
// (LogLevel, LogFormat) are not part of host.Config: the caller builds logger
// from them. Fields the file cannot set (MaxWriteQueue) are left zero, which
// host reads as its default.
func (f *File) HostConfig(logger hclog.Logger) host.Config {
	n := f.Node
	return host.Config{
		Name:                   n.Name,
		DataDir:                n.DataDir,
		ListenAddr:             n.Listen,
		Logger:                 logger,
		CallTimeout:            n.CallTimeout,
		HandshakeTimeout:       n.HandshakeTimeout,
		MaxHandshakes:          n.MaxHandshakes,
		MaxMessageSize:         n.MaxMessageSize,
		MaxInflightPerPeer:     n.MaxInflightPerPeer,
		MaxHandshakesPerSource: n.MaxHandshakesPerSource,
		MaxConnsPerPeer:        n.MaxConnsPerPeer,
		MaxPeerMemory:          n.MaxPeerMemory,
		WriteTimeout:           n.WriteTimeout,
		PingInterval:           n.PingInterval,
		ReconnectMin:           n.ReconnectMin,
		ReconnectMax:           n.ReconnectMax,
	}
}
