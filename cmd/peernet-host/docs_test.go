package main

import (
	"bufio"
	"flag"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestDocsAgree checks docs/operating.md's command-line reference against
// the command table that "peernet-host help" prints: the same commands,
// each of a command's own flags named in its row, and the flags every
// command takes in the table of common flags.
func TestDocsAgree(t *testing.T) {
	f, err := os.Open("../../docs/operating.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]string{} // command -> the text of its rows
	var common string           // the rows of the common flags
	section, table, cmd := false, false, ""
	row := regexp.MustCompile("^\\| `([a-z]+)` \\|")
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			section = line == "## Command-line reference"
		case !section:
		case strings.HasPrefix(line, "| `-"):
			common += line
		case strings.HasPrefix(line, "| command | arguments |"):
			table = true
		case !strings.HasPrefix(line, "|"):
			table = false
		case table && row.MatchString(line):
			cmd = row.FindStringSubmatch(line)[1]
			rows[cmd] += line
		case table && strings.HasPrefix(line, "| |"):
			rows[cmd] += line // a further row of the same command
		}
	}
	var documented, listed []string
	for name := range rows {
		documented = append(documented, name)
	}
	for name := range commands {
		listed = append(listed, name)
	}
	sort.Strings(documented)
	sort.Strings(listed)
	if !slices.Equal(documented, listed) {
		t.Errorf("docs/operating.md documents the commands %q; peernet-host help lists %q", documented, listed)
	}
	for name, cmd := range commands {
		commandFlags(name, cmd).VisitAll(func(fl *flag.Flag) {
			where, text := "its row", rows[name]
			if slices.Contains([]string{"config", "json", "timeout"}, fl.Name) {
				where, text = "the common flags", common
			}
			if !strings.Contains(text, "`-"+fl.Name) {
				t.Errorf("docs/operating.md: %s of %s does not name -%s", where, name, fl.Name)
			}
		})
	}
}
