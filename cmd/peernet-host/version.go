package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/peernet/peernet/daemon"
	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/wire"
)

// versionInfo is what "peernet-host version -json" prints.
type versionInfo struct {
	// Version is the module version (daemon.Version), the same string
	// "status -json" reports for a running node.
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from, and Modified
	// whether the work tree had uncommitted changes; both are empty when
	// the build recorded no VCS information.
	Revision     string `json:"revision,omitempty"`
	RevisionTime string `json:"revision_time,omitempty"`
	Modified     bool   `json:"modified,omitempty"`
	Go           string `json:"go"` // the toolchain that built the binary
	// WireProtocol is the version of docs/protocol.md spoken to peers, and
	// PluginProtocol the version of the plugin protocol spoken to plugins.
	WireProtocol   int `json:"wire_protocol"`
	PluginProtocol int `json:"plugin_protocol"`
}

func buildVersion() versionInfo {
	v := versionInfo{
		Version:        daemon.Version(),
		Go:             runtime.Version(),
		WireProtocol:   wire.ProtocolVersion,
		PluginProtocol: pluginsdk.ProtocolVersion,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.RevisionTime = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	return v
}

// printVersion prints the version; it needs neither a configuration file
// nor a running node.
func printVersion(env *cmdEnv, args []string) error {
	if len(args) != 0 {
		return usagef("version takes no arguments")
	}
	v := buildVersion()
	if env.json {
		return env.printJSON(v)
	}
	fmt.Fprintf(env.stdout, "peernet-host %s\n", v.Version)
	if v.Revision != "" {
		modified := ""
		if v.Modified {
			modified = " (modified)"
		}
		fmt.Fprintf(env.stdout, "revision   %s%s %s\n", v.Revision, modified, v.RevisionTime)
	}
	fmt.Fprintf(env.stdout, "go         %s\nprotocols  wire %d, plugin %d\n", v.Go, v.WireProtocol, v.PluginProtocol)
	return nil
}
