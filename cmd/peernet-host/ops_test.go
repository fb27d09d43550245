//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/wire"
)

// TestOperatorTools checks, on real daemons driven through the command
// line, the tools around the node: version, the bash completion, and the
// Grafana dashboard against the metrics a running node exports.
func TestOperatorTools(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and runs daemons")
	}
	bins := buildBinaries(t)
	// metrics_listen takes no port 0, so the test picks a free port. Another
	// process could take it before alpha does; alpha would then fail to
	// start, saying so, rather than the test passing wrongly.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := ln.Addr().String()
	ln.Close()
	alpha, beta, _ := pair(t, bins, func(n *node) string {
		return nodeBlock("alpha") + pluginBlock("echo", bins.echo, bins.echoSum, `handle "echo" {}`) +
			fmt.Sprintf("\ntelemetry {\n  metrics_listen = %q\n}\n", metrics)
	})
	t.Run("version", func(t *testing.T) { testVersion(t, bins, alpha) })
	t.Run("completion", func(t *testing.T) { testCompletion(t, bins, alpha, beta) })
	t.Run("dashboard", func(t *testing.T) { testDashboard(t, alpha, beta) })
}

func testVersion(t *testing.T, bins *binaries, alpha *node) {
	r, err := runCLI(bins.host, "", "version", "-json")
	if err != nil || r.code != exitOK {
		t.Fatalf("version -json: %v %v", err, r)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("version -json: %v\n%s", err, r.stdout)
	}

	// The command reports what the go command recorded in the binary.
	out, err := exec.Command("go", "version", "-m", bins.host).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	want := versionInfo{Version: "(devel)", Go: runtime.Version(), WireProtocol: wire.ProtocolVersion, PluginProtocol: pluginsdk.ProtocolVersion}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/peernet/peernet":
			want.Version = f[2]
		case len(f) == 2 && f[0] == "build":
			k, val, _ := strings.Cut(f[1], "=")
			switch k {
			case "vcs.revision":
				want.Revision = val
			case "vcs.time":
				want.RevisionTime = val
			case "vcs.modified":
				want.Modified = val == "true"
			}
		}
	}
	if v != want {
		t.Errorf("version -json says\n%+v\nthe binary's build info says\n%+v", v, want)
	}
	if want.Revision == "" {
		t.Logf("the binary records no VCS revision (built outside a git clone, in a git worktree, or with -buildvcs=false)")
	}

	r, err = runCLI(bins.host, "", "version")
	if err != nil || r.code != exitOK {
		t.Fatalf("version: %v %v", err, r)
	}
	for _, s := range []string{"peernet-host " + v.Version + "\n", v.Go, fmt.Sprintf("wire %d, plugin %d", wire.ProtocolVersion, pluginsdk.ProtocolVersion), v.Revision} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("version lacks %q:\n%s", s, r.stdout)
		}
	}

	if st := alpha.status(t); st.Version != v.Version {
		t.Errorf("status -json says version %q; version says %q", st.Version, v.Version)
	}
}

// complete runs the completion function of the script that "completion
// bash" prints, as bash does at a <Tab> after words (the last one being
// the word under the cursor), and returns COMPREPLY sorted.
func complete(t *testing.T, script string, words ...string) []string {
	t.Helper()
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	prog := script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" + strconv.Itoa(len(words)-1) +
		"\n_peernet_host\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog)
	cmd.Env = hostEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("completing %q: %v\n%s", words, err, stderr.String())
	}
	got := strings.Fields(string(out))
	sort.Strings(got)
	return got
}

func testCompletion(t *testing.T, bins *binaries, alpha, beta *node) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	r, err := runCLI(bins.host, "", "completion", "bash")
	if err != nil || r.code != exitOK {
		t.Fatalf("completion bash: %v %v", err, r)
	}
	script := r.stdout
	gammaID := strings.TrimSpace(newNodeID(t, bins))
	alpha.must(t, "trust", "add", gammaID, "gamma")

	var all []string
	for n := range commands {
		all = append(all, n)
	}
	sort.Strings(all)
	noNode := filepath.Join(t.TempDir(), "none.hcl")
	h := bins.host
	for _, c := range []struct {
		words []string
		want  []string
	}{
		{[]string{h, ""}, all},
		{[]string{h, "tr"}, []string{"trust"}},
		{[]string{h, "ver"}, []string{"version"}},
		{[]string{h, "help", "rel"}, []string{"reload"}},
		{[]string{h, "completion", ""}, []string{"bash"}},
		{[]string{h, "trust", ""}, []string{"add", "list", "relabel", "remove"}},
		{[]string{h, "trust", "-json", "rem"}, []string{"remove"}},
		{[]string{h, "trust", "list", "-json", ""}, nil},
		{[]string{h, "init", "-n"}, []string{"-name"}},
		{[]string{h, "status", "-config", filepath.Join(alpha.dir, "alp")}, []string{alpha.cfg}},
		// Peer labels come from the node the line's -config names.
		{[]string{h, "call", "-config", alpha.cfg, ""}, []string{"beta", "gamma"}},
		{[]string{h, "call", "-config", alpha.cfg, "b"}, []string{"beta"}},
		{[]string{h, "send", "-config=" + alpha.cfg, "-timeout", "5s", "g"}, []string{"gamma"}},
		{[]string{h, "connect", "-config", beta.cfg, ""}, []string{"alpha"}},
		{[]string{h, "trust", "-config", alpha.cfg, "remove", ""}, []string{"beta", "gamma"}},
		{[]string{h, "trust", "-config", alpha.cfg, "relabel", "g"}, []string{"gamma"}},
		// Only the PEER positions complete to labels.
		{[]string{h, "call", "-config", alpha.cfg, "beta", ""}, nil},
		{[]string{h, "trust", "-config", alpha.cfg, "add", ""}, nil},
		{[]string{h, "status", "-config", alpha.cfg, ""}, nil},
		// No node answers: nothing, and no error on the terminal.
		{[]string{h, "call", "-config", noNode, ""}, nil},
	} {
		if got := complete(t, script, c.words...); !slices.Equal(got, c.want) {
			t.Errorf("completing %q: got %q, want %q", c.words[1:], got, c.want)
		}
	}
}

// newNodeID creates the identity of a node that never runs and returns its
// PeerID.
func newNodeID(t *testing.T, bins *binaries) string {
	t.Helper()
	n := newNode(t, bins, t.TempDir(), "gamma")
	n.write(t, nodeBlock("gamma"))
	return n.must(t, "id")
}

// metricsAddr is the address the node's log says it serves metrics on.
var metricsAddr = regexp.MustCompile(`serving metrics: addr=(\S+)`)

func testDashboard(t *testing.T, alpha, beta *node) {
	// Every series the dashboard draws exists once the node has served a
	// call, done a handshake and run a plugin.
	beta.must(t, "call", "alpha", "echo", "hi")
	m := metricsAddr.FindStringSubmatch(alpha.log.String())
	if m == nil {
		t.Fatalf("alpha's log does not say where it serves metrics")
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		exported[line[:strings.IndexAny(line, "{ ")]] = true
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile("../../examples/grafana/peernet.json")
	if err != nil {
		t.Fatal(err)
	}
	queries, err := dashboardQueries(data)
	if err != nil {
		t.Fatalf("examples/grafana/peernet.json: %v", err)
	}
	used := map[string]bool{}
	for where, q := range queries {
		names, err := promQLMetrics(q)
		if err != nil || len(names) == 0 {
			t.Errorf("%s: cannot read the metric names of %q (%v)", where, q, err)
		}
		for _, n := range names {
			used[n] = true
			if !exported[n] {
				t.Errorf("%s: the node does not export %s (query %q)", where, n, q)
			}
		}
	}
	// And the other way round: the dashboard shows every PeerNet metric
	// (a histogram through its buckets).
	for n := range exported {
		base := strings.TrimSuffix(strings.TrimSuffix(n, "_sum"), "_count")
		if strings.HasPrefix(n, "peernet_") && !used[n] && !(base != n && exported[base+"_bucket"]) {
			t.Errorf("the node exports %s, but no panel of the dashboard shows it", n)
		}
	}
	if t.Failed() {
		var names []string
		for n := range exported {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Logf("exported: %s", strings.Join(names, " "))
	}
}

// dashboardQueries returns every PromQL query of a Grafana dashboard:
// its panels' targets (rows' panels included) and its query variables,
// keyed by where each is.
func dashboardQueries(data []byte) (map[string]string, error) {
	type panel struct {
		Title   string  `json:"title"`
		Type    string  `json:"type"`
		Panels  []panel `json:"panels"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	}
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	qs := map[string]string{}
	var walk func(ps []panel) error
	walk = func(ps []panel) error {
		for _, p := range ps {
			if p.Type != "row" && len(p.Targets) == 0 {
				return fmt.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				qs[fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)] = tg.Expr
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.Name, err)
		}
		// label_values(METRIC, LABEL) names one metric.
		lv := regexp.MustCompile(`^label_values\(\s*([^,]+),\s*\w+\s*\)$`).FindStringSubmatch(q.Query)
		if lv == nil {
			return nil, fmt.Errorf("variable %s: query %q is not label_values(METRIC, LABEL)", v.Name, q.Query)
		}
		qs["variable "+v.Name] = lv[1]
	}
	return qs, nil
}

// promQL tokens, in the order they are tried.
var (
	promString  = regexp.MustCompile(`^("(\\.|[^"\\])*"|'(\\.|[^'\\])*'|` + "`[^`]*`)")
	promVar     = regexp.MustCompile(`^\$(\{\w+\}|\w+)`)                         // a Grafana variable
	promNumber  = regexp.MustCompile(`^[0-9][0-9.]*([eE][+-]?[0-9]+)?[a-zA-Z]*`) // numbers and durations (5m)
	promIdent   = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promGrouper = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	promKeyword = map[string]bool{"bool": true, "offset": true, "and": true, "or": true, "unless": true, "atan2": true,
		// Aggregations, which may be followed by "by (…)" before their "(".
		"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
		"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true}
)

// promQLMetrics returns the metric names in a PromQL expression: the
// identifiers that are not functions or aggregations (followed by "("),
// keywords, label names (in {} or in by/without/on/ignoring lists),
// strings, numbers, durations or Grafana variables. It errs on what it
// cannot tokenise, so a query it misreads fails the test rather than
// passing unchecked.
func promQLMetrics(q string) ([]string, error) {
	var names []string
	braces, grouping := 0, false // inside {…}; inside a by(…)-style label list
	for s := q; s != ""; {
		switch tok := ""; {
		case s[0] == ' ' || s[0] == '\t' || s[0] == '\n':
			s = s[1:]
		case promString.MatchString(s):
			s = s[len(promString.FindString(s)):]
		case promVar.MatchString(s):
			s = s[len(promVar.FindString(s)):]
		case promNumber.MatchString(s):
			s = s[len(promNumber.FindString(s)):]
		case promIdent.MatchString(s):
			tok = promIdent.FindString(s)
			s = s[len(tok):]
			next := strings.TrimLeft(s, " \t\n")
			switch {
			case braces > 0 || grouping:
			case promGrouper[tok]:
				grouping = strings.HasPrefix(next, "(")
			case promKeyword[tok], strings.HasPrefix(next, "("):
			default:
				names = append(names, tok)
			}
		case s[0] == '{':
			braces++
			s = s[1:]
		case s[0] == '}':
			braces--
			s = s[1:]
		case s[0] == ')' && grouping:
			grouping = false
			s = s[1:]
		case strings.ContainsRune("()[],=!~+-*/%^<>:", rune(s[0])):
			s = s[1:]
		default:
			return nil, fmt.Errorf("unexpected %q", s)
		}
	}
	return names, nil
}

func TestPromQLMetrics(t *testing.T) {
	for _, c := range []struct {
		q    string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (handle, le) (rate(a_bucket{instance=~"$instance", x!="y"}[$__rate_interval]))`, []string{"a_bucket"}},
		{`histogram_quantile(0.99, sum without(le) (rate(b[5m] offset 1h)))`, []string{"b"}},
		{`sum(rate(a{s!="ok"}[1m])) / on (h) group_left(p) c == 1`, []string{"a", "c"}},
		{`max by (plugin, state) (d) > bool 0.5e3 and e`, []string{"d", "e"}},
		{`increase(f[${range}])`, []string{"f"}},
	} {
		got, err := promQLMetrics(c.q)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("promQLMetrics(%q) = %q, %v; want %q", c.q, got, err, c.want)
		}
	}
	if _, err := promQLMetrics("a # b"); err == nil {
		t.Errorf("promQLMetrics accepted a character it does not know")
	}
}
