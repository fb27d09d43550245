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
	"io"
	"io/fs"
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
	exitBadConfig  = 4 // the configuration file is missing or invalid
)

// command is one subcommand.
type command struct {
	usage string // its arguments
	help  string // one line
	run   func(env *cmdEnv, args []string) error
	flags func(fs *flag.FlagSet, env *cmdEnv)
}

var commands = map[string]*command{
	"run":        {"", "run the node in the foreground (SIGHUP reloads, SIGINT/SIGTERM stop)", runNode, runFlags},
	"init":       {"", "write a starter configuration and create the node's identity", initNode, initFlags},
	"id":         {"", "print this node's PeerID", printID, nil},
	"status":     {"", "show the running node's status", status, nil},
	"peers":      {"", "list trusted peers and whether they are connected", peers, nil},
	"trust":      {"add PEERID LABEL | relabel PEER LABEL | remove PEER | list", "manage the trust list", trustCmd, nil},
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
	"help":       {"[COMMAND]", "list the commands, or print one command's arguments and flags", helpCmd, nil},
}

func main() {
	os.Exit(dispatch(os.Args[1:]))
}

func dispatch(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		usage(os.Stderr, commands)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "peernet-host: unknown command %q\n\n", args[0])
		usage(os.Stderr, commands)
		return exitUsage
	}
	env := &cmdEnv{name: args[0], stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, commands: commands}
	fs := newFlagSet(env, cmd)
	rest, err := parseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	fs.Visit(func(f *flag.Flag) { env.configSet = env.configSet || f.Name == "config" })
	return report(env, cmd.run(env, rest))
}

// newFlagSet returns the flags of cmd, which dispatch parses into env: the
// three every command takes and the command's own. Its Usage prints the
// command's help to its output (standard error, unless changed).
func newFlagSet(env *cmdEnv, cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet("peernet-host "+env.name, flag.ContinueOnError)
	fs.StringVar(&env.configPath, "config", defaultConfig(), "configuration `file`; the default is $PEERNET_CONFIG if set")
	fs.BoolVar(&env.json, "json", false, "print JSON for scripts instead of tables")
	fs.DurationVar(&env.timeout, "timeout", 0, "give up after this long (0: the node's default for calls, 30s otherwise)")
	if cmd.flags != nil {
		cmd.flags(fs, env)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\n%s.\n", strings.TrimSpace("peernet-host "+env.name+" [flags] "+cmd.usage), capitalise(cmd.help))
		fmt.Fprint(fs.Output(), "\nFlags (before or after the arguments; after \"--\" everything is an argument):\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseInterspersed parses args with fs, taking flags wherever they are
// among the arguments, as in "peernet-host trust list -json", and returns
// the arguments in their order. A lone "-" is an argument (call's stdin),
// and "--" ends the flags: everything after it is an argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var out []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := args[:len(args)-len(rest)]; len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(out, rest...), nil
		}
		if len(rest) == 0 {
			return out, nil
		}
		out = append(out, rest[0])
		args = rest[1:]
	}
}

// report prints err for a person, or with -json as a JSON object on
// standard output for a script, and picks the exit code; nil is exitOK.
// Usage errors are always text.
func report(env *cmdEnv, err error) int {
	if err == nil {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(env.stderr, "peernet-host %s: %v\nRun \"peernet-host help %s\" for usage.\n", env.name, err, env.name)
		return exitUsage
	}
	var de *config.DiagError
	var pe *fs.PathError
	ce := &control.Error{Code: control.CodeFailed, Message: err.Error()}
	code, text := exitFailed, err.Error()
	switch {
	case errors.As(err, &de):
		// One "file:line:col: summary: detail" line per problem, the form
		// docs/configuration.md shows and editors jump to.
		code, ce.Code = exitBadConfig, control.CodeInvalidConfig
		text = "invalid configuration:\n" + de.Error()
	case errors.As(err, &pe) && pe.Path == env.configPath && errors.Is(err, fs.ErrNotExist):
		code, ce.Code = exitBadConfig, control.CodeInvalidConfig
		ce.Message = fmt.Sprintf("configuration file %s not found (%s)", env.configPath, env.configOrigin())
		text = ce.Message + "\nName the node's file with -config FILE or $PEERNET_CONFIG, or write a starter file with \"peernet-host init -config FILE\"."
	case errors.Is(err, control.ErrNotRunning):
		code, ce.Code = exitNotRunning, control.CodeNotRunning
		text = fmt.Sprintf("%v\nIs \"peernet-host run -config %s\" running?", err, env.configPath)
	case errors.As(err, &ce):
		if ce.Code == control.CodeInvalidConfig {
			code = exitBadConfig
			text = "the node kept its configuration; the file is invalid:\n" + ce.Message
		}
	}
	if env.json {
		env.printJSON(struct {
			Error *control.Error `json:"error"`
		}{ce})
	} else {
		fmt.Fprintf(env.stderr, "peernet-host %s: %s\n", env.name, text)
	}
	return code
}

// helpCmd prints the list of commands, or one command's help.
func helpCmd(env *cmdEnv, args []string) error {
	switch len(args) {
	case 0:
		usage(env.stdout, env.commands)
		return nil
	case 1:
		cmd, ok := env.commands[args[0]]
		if !ok {
			return usagef("unknown command %q", args[0])
		}
		fs := newFlagSet(&cmdEnv{name: args[0]}, cmd)
		fs.SetOutput(env.stdout)
		fs.Usage()
		return nil
	}
	return usagef("help takes at most one command")
}

// usage writes the list of commands in cmds and what they have in common.
func usage(w io.Writer, cmds map[string]*command) {
	fmt.Fprint(w, "usage: peernet-host <command> [flags] [arguments]\n\nCommands:\n")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].help)
	}
	fmt.Fprint(w, "\nEvery command takes -config FILE (default $PEERNET_CONFIG, else peernet.hcl).\n"+
		"Flags may come before or after the arguments. Run \"peernet-host help COMMAND\"\n"+
		"for a command's arguments and flags.\n")
	fmt.Fprint(w, "\nrun checks the whole file, and reload has the running node check the file it\n"+
		"was started from. The other commands read only the node block's name and\n"+
		"data_dir, so they work while the rest of the file has errors, such as a\n"+
		"missing plugin binary.\n\n")
	fmt.Fprintf(w, "Exit codes: %d ok, %d failed, %d usage, %d node not running, %d configuration missing or invalid.\n",
		exitOK, exitFailed, exitUsage, exitNotRunning, exitBadConfig)
}

// defaultConfigName is the configuration file's name when neither -config
// nor $PEERNET_CONFIG names one.
const defaultConfigName = "peernet.hcl"

func defaultConfig() string {
	if p := os.Getenv("PEERNET_CONFIG"); p != "" {
		return p
	}
	return defaultConfigName
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
