package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/peernet/peernet/control"
)

// completionTimeout bounds the request for peer labels that the completion
// script makes at each <Tab>: a node that does not answer at once leaves
// the completion empty rather than hanging the shell.
const completionTimeout = 2 * time.Second

// completion prints a shell completion script. "completion peers", which
// the script runs, prints the labels of the running node's trusted peers,
// one a line; it is left out of the usage because only the script needs it.
func completion(env *cmdEnv, args []string) error {
	if len(args) != 1 {
		return usagef("completion needs a shell: bash")
	}
	switch args[0] {
	case "bash":
		return writeBashCompletion(env.stdout, env.commands)
	case "peers":
		return env.request(completionTimeout, func(ctx context.Context, c *control.Client) error {
			ps, err := c.Peers(ctx)
			if err != nil {
				return err
			}
			for _, p := range ps {
				fmt.Fprintln(env.stdout, p.Label)
			}
			return nil
		})
	}
	return usagef("completion supports bash only, not %q", args[0])
}

// completionCase is one arm of the script's "case": when the command cmd
// has n arguments already, the first of them matching first ("*" for any),
// the next argument completes to words, or to peer labels if peer is set.
type completionCase struct {
	cmd   string
	n     int
	first string
	words []string
	peer  bool
}

// completionCases reads the cases from each command's usage line, so a
// command added to the table completes without changes here: alternatives
// are separated by " | ", a lowercase word is a literal keyword (trust's
// add, remove, list), PEER is a peer label.
func completionCases(cmds map[string]*command, names []string) []completionCase {
	cases := []completionCase{
		{cmd: "help", first: "*", words: names},
		{cmd: "completion", first: "*", words: []string{"bash"}},
	}
	for _, name := range names {
		cmd, ok := cmds[name]
		if !ok || name == "completion" || name == "help" {
			continue
		}
		var keywords []string
		for _, alt := range strings.Split(cmd.usage, " | ") {
			words := strings.Fields(alt)
			first := "*"
			if len(words) > 0 && isKeyword(words[0]) {
				keywords = append(keywords, words[0])
				first = words[0]
			}
			for i, w := range words {
				if strings.Trim(w, "[]") == "PEER" {
					cases = append(cases, completionCase{cmd: name, n: i, first: first, peer: true})
				}
			}
		}
		if len(keywords) > 0 {
			cases = append(cases, completionCase{cmd: name, first: "*", words: keywords})
		}
	}
	return cases
}

// isKeyword reports whether a word of a usage line is a literal, such as
// "add", rather than a placeholder such as PEER or [ARGS.
func isKeyword(w string) bool {
	return w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyz") == ""
}

// commandFlags returns the flags of the command called name, for the
// script to complete them and to know which ones take a value. The three
// flags every command has are registered here as dispatch registers them.
func commandFlags(name string, cmd *command) *flag.FlagSet {
	env := &cmdEnv{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.String("config", "", "")
	fs.Bool("json", false, "")
	fs.Duration("timeout", 0, "")
	if cmd.flags != nil {
		cmd.flags(fs, env)
	}
	return fs
}

func writeBashCompletion(w io.Writer, cmds map[string]*command) error {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)

	var flagCases, valueFlags strings.Builder
	valued := map[string]bool{}
	for _, n := range names {
		cmd, ok := cmds[n]
		if !ok {
			continue
		}
		var all []string
		commandFlags(n, cmd).VisitAll(func(f *flag.Flag) {
			all = append(all, "-"+f.Name)
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				valued["-"+f.Name] = true
			}
		})
		fmt.Fprintf(&flagCases, "\t\t%s) flags=%q ;;\n", n, strings.Join(all, " "))
	}
	vf := make([]string, 0, len(valued))
	for f := range valued {
		vf = append(vf, f)
	}
	sort.Strings(vf)
	valueFlags.WriteString(strings.Join(vf, "|"))

	var argCases strings.Builder
	for _, c := range completionCases(cmds, names) {
		action := fmt.Sprintf("COMPREPLY=($(compgen -W %q -- \"$cur\"))", strings.Join(c.words, " "))
		if c.peer {
			action = "_peernet_host_peers"
		}
		fmt.Fprintf(&argCases, "\t%s/%d/%s) %s ;;\n", c.cmd, c.n, c.first, action)
	}

	_, err := fmt.Fprintf(w, bashTemplate, strings.Join(names, " "), valueFlags.String(), flagCases.String(), argCases.String())
	return err
}

// bashTemplate is the script; its verbs are the command names, the flags
// that take a value, the flags of each command, and the argument cases.
const bashTemplate = `# bash completion for peernet-host, printed by "peernet-host completion bash".
# Load it with: source <(peernet-host completion bash)
# or install it as the file peernet-host in bash-completion's completions
# directory (for example /usr/share/bash-completion/completions).

# _peernet_host_peers completes the labels of the trusted peers of the node
# named by the -config on the line (or the default one), asking the node.
_peernet_host_peers() {
	local labels
	labels=$("${COMP_WORDS[0]}" completion ${config:+-config "$config"} peers 2>/dev/null)
	COMPREPLY=($(compgen -W "$labels" -- "$cur"))
}

_peernet_host() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD-1]}
	COMPREPLY=()
	if ((COMP_CWORD == 1)); then
		COMPREPLY=($(compgen -W %[1]q -- "$cur"))
		return
	fi
	if [[ $prev == -config || $prev == --config ]]; then
		COMPREPLY=($(compgen -f -- "$cur"))
		return
	fi
	local cmd=${COMP_WORDS[1]} config= flags= i w
	local -a args=()
	# The words between the command and the cursor: flags (with their
	# values) and arguments.
	for ((i = 2; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		-config=* | --config=*) config=${w#*=} ;;
		-config | --config) config=${COMP_WORDS[i+1]}; ((i++)) ;;
		%[2]s) ((i++)) ;;
		-*) ;;
		*) args+=("$w") ;;
		esac
	done
	config=${config/#\~/$HOME}
	if [[ $cur == -* ]]; then
		case $cmd in
%[3]s		esac
		COMPREPLY=($(compgen -W "$flags" -- "$cur"))
		return
	fi
	case "$cmd/${#args[@]}/${args[0]}" in
%[4]s	esac
}

complete -F _peernet_host peernet-host
`
