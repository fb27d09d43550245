// Command peernet-host runs a PeerNet node with its plugins from an HCL
// configuration file, and manages a running node through its control
// socket.
//
// Usage:
//
//	peernet-host <command> [flags] [arguments]
//
// Run "peernet-host help" for the commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/peernet/peernet/config"
	"github.com/peernet/peernet/control"
)

// Exit codes.
const (
	exitOK         = 0
	exitFailed     = 1 // the node or the peer reported a failure
	exitUsage      = 2 // bad command line
	exitNotRunning = 3 // no node answers on the control socket
	exitBadConfig  = 4 // the configuration file is invalid
)

// command is one subcommand.
type command struct {
	usage string // arguments after the flags
	help  string // one line
	run   func(env *cmdEnv, args []string) error
	flags func(fs *flag.FlagSet, env *cmdEnv)
}

var commands = map[string]*command{
	"run":        {"", "run the node in the foreground (SIGHUP reloads, SIGINT/SIGTERM stop)", runNode, nil},
	"init":       {"", "write a starter configuration and create the node's identity", initNode, initFlags},
	"id":         {"", "print this node's PeerID", printID, nil},
	"status":     {"", "show the running node's status", status, nil},
	"peers":      {"", "list trusted peers and whether they are connected", peers, nil},
	"trust":      {"add PEERID LABEL | remove PEER | list", "manage the trust list", trustCmd, nil},
	"connect":    {"PEER HOST:PORT", "connect to a peer and wait for the handshake (refused if connected elsewhere)", connect, nil},
	"disconnect": {"PEER", "drop the connection to a peer, keeping it trusted; no redial until the next connect", disconnect, nil},
	"call":       {"PEER HANDLE [ARGS | -]", "call a handle on a peer and print the result (- reads ARGS from stdin)", call, nil},
	"send":       {"PEER HANDLE [ARGS | -]", "send to a handle on a peer without waiting", send, nil},
	"plugins":    {"", "show the plugins' status", plugins, nil},
	"reload":     {"", "re-read the configuration file and apply the difference", reload, nil},
	"revoke":     {"PLUGIN [HANDLE]", "revoke a plugin's handle, or the whole plugin", revoke, nil},

	// Commands about peernet-host itself rather than a node.
	"version":    {"", "print the version, its commit and the protocol versions spoken", printVersion, nil},
	"completion": {"bash", "print a bash completion script: source <(peernet-host completion bash)", completion, nil},
}

func main() {
	os.Exit(dispatch(os.Args[1:]))
}

func dispatch(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage()
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "peernet-host: unknown command %q\n\n", args[0])
		usage()
		return exitUsage
	}
	env := &cmdEnv{name: args[0], stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, commands: commands}
	fs := flag.NewFlagSet("peernet-host "+args[0], flag.ContinueOnError)
	fs.StringVar(&env.configPath, "config", defaultConfig(), "configuration `file`; the default is $PEERNET_CONFIG if set")
	fs.BoolVar(&env.json, "json", false, "print JSON for scripts instead of tables")
	fs.DurationVar(&env.timeout, "timeout", 0, "give up after this long (0: the node's default for calls, 30s otherwise)")
	if cmd.flags != nil {
		cmd.flags(fs, env)
	}
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: peernet-host %s [flags] %s\n\n%s.\n\nFlags:\n", args[0], cmd.usage, capitalise(cmd.help))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	err := cmd.run(env, fs.Args())
	if err == nil {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) && flagAfterArgs(fs) {
		err = usagef("%s (flags go before the arguments)", ue.msg)
	}
	return report(env, err)
}

// flagAfterArgs reports whether one of the arguments left after parsing
// names a flag, as in "peernet-host trust add ID LABEL -config f": the flag
// package stops at the first argument, so the flag was taken as one.
func flagAfterArgs(fs *flag.FlagSet) bool {
	for _, a := range fs.Args() {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && fs.Lookup(name) != nil {
			return true
		}
	}
	return false
}

// report prints err for a person and picks the exit code.
func report(env *cmdEnv, err error) int {
	var ue usageError
	var de *config.DiagError
	var ce *control.Error
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(env.stderr, "peernet-host %s: %v\nRun \"peernet-host %s -h\" for usage.\n", env.name, err, env.name)
		return exitUsage
	case errors.As(err, &de):
		// One "file:line:col: summary: detail" line per problem, the form
		// docs/configuration.md shows and editors jump to.
		fmt.Fprintf(env.stderr, "peernet-host %s: invalid configuration:\n%s\n", env.name, de.Error())
		return exitBadConfig
	case errors.Is(err, control.ErrNotRunning):
		fmt.Fprintf(env.stderr, "peernet-host %s: %v\nIs \"peernet-host run -config %s\" running?\n", env.name, err, env.configPath)
		return exitNotRunning
	case errors.As(err, &ce) && ce.Code == control.CodeInvalidConfig:
		fmt.Fprintf(env.stderr, "peernet-host %s: the node kept its configuration; the file is invalid:\n%s\n", env.name, ce.Message)
		return exitBadConfig
	}
	fmt.Fprintf(env.stderr, "peernet-host %s: %v\n", env.name, err)
	return exitFailed
}

func usage() {
	fmt.Fprint(os.Stderr, "usage: peernet-host <command> [flags] [arguments]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].help)
	}
	fmt.Fprint(os.Stderr, "\nEvery command takes -config FILE. Run \"peernet-host COMMAND -h\" for its flags.\n")
	fmt.Fprint(os.Stderr, "\nrun checks the whole file, and reload has the running node check the file it\n"+
		"was started from. The other commands read only the node block's name and\n"+
		"data_dir, so they work while the rest of the file has errors, such as a\n"+
		"missing plugin binary.\n\n")
	fmt.Fprintf(os.Stderr, "Exit codes: %d ok, %d failed, %d usage, %d node not running, %d invalid configuration.\n",
		exitOK, exitFailed, exitUsage, exitNotRunning, exitBadConfig)
}

func defaultConfig() string {
	if p := os.Getenv("PEERNET_CONFIG"); p != "" {
		return p
	}
	return "peernet.hcl"
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }
