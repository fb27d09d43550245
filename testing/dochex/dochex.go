// Package dochex implements reading the hex examples of a normative
// document (docs/protocol.md, docs/plugin-protocol.md), so that tests can
// decode them with the code they describe: an example that drifts from the
// code fails a test.
package dochex

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// Examples returns the named hex examples under the heading of the
// markdown file at path whose text starts with section (e.g. "7.1" or
// "7.1 Preamble and identity payload"). The section runs until the next
// heading of the same or a higher level.
//
// An example is a line
//
//	example: NAME
//
// followed (blank lines allowed) by a fenced block opened with ```hex. Inside
// the block whitespace is ignored and '#' starts a comment that runs to the
// end of the line, so bytes can be grouped and annotated field by field.
//
// It fails the test if the section is missing or has no examples, if a name
// repeats, if an example line is not followed by a hex block, or if a block is
// not valid hex. The returned slices are owned by the caller.
func Examples(t testing.TB, path, section string) map[string][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	examples := make(map[string][]byte)
	var (
		inSection    bool
		found        bool
		sectionLevel int
		pending      string // example name waiting for its block
		inBlock      bool
		inOtherFence bool
		block        strings.Builder
	)
	sc := bufio.NewScanner(bytes.NewReader(raw))
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		trimmed := strings.TrimSpace(text)
		if inBlock {
			if trimmed == "```" {
				b, err := hex.DecodeString(block.String())
				if err != nil {
					t.Fatalf("%s:%d: example %q: bad hex: %v", path, line, pending, err)
				}
				examples[pending] = b
				pending, inBlock = "", false
				block.Reset()
				continue
			}
			if i := strings.IndexByte(text, '#'); i >= 0 {
				text = text[:i]
			}
			block.WriteString(strings.Join(strings.Fields(text), ""))
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			// Fences that are not example blocks (byte layouts, diagrams)
			// may contain lines starting with '#'; skip them whole.
			if inSection && pending != "" && trimmed == "```hex" {
				inBlock = true
				continue
			}
			inOtherFence = !inOtherFence
			continue
		}
		if inOtherFence {
			continue
		}
		if level := headingLevel(trimmed); level > 0 {
			title := strings.TrimSpace(trimmed[level:])
			switch {
			case inSection && level <= sectionLevel:
				inSection = false
			case !inSection && !found && strings.HasPrefix(title, section):
				inSection, found, sectionLevel = true, true, level
			}
			if pending != "" {
				t.Fatalf("%s:%d: example %q has no ```hex block", path, line, pending)
			}
			continue
		}
		if !inSection {
			continue
		}
		if name, ok := strings.CutPrefix(trimmed, "example:"); ok {
			if pending != "" {
				t.Fatalf("%s:%d: example %q has no ```hex block", path, line, pending)
			}
			name = strings.Trim(strings.TrimSpace(name), "`")
			if name == "" {
				t.Fatalf("%s:%d: example without a name", path, line)
			}
			if _, dup := examples[name]; dup {
				t.Fatalf("%s:%d: example %q defined twice", path, line, name)
			}
			pending = name
			continue
		}
		if pending != "" && trimmed != "" {
			t.Fatalf("%s:%d: example %q: expected a ```hex block, got %q", path, line, pending, trimmed)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	switch {
	case inBlock || pending != "":
		t.Fatalf("%s: example %q is not terminated", path, pending)
	case !found:
		t.Fatalf("%s: no heading starting with %q", path, section)
	case len(examples) == 0:
		t.Fatalf("%s: section %q has no examples", path, section)
	}
	return examples
}

// headingLevel returns the ATX heading level of a markdown line ("## x" is
// 2), or 0 if the line is not a heading.
func headingLevel(line string) int {
	n := 0
	for n < len(line) && line[n] == '#' {
		n++
	}
	if n == 0 || n > 6 || n == len(line) || line[n] != ' ' {
		return 0
	}
	return n
}
