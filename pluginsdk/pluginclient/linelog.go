package pluginclient

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"

	"github.com/hashicorp/go-hclog"
)

// maxLine bounds a buffered line of plugin output; a longer one is logged in
// pieces.
const maxLine = 64 << 10

// lineLogger is an io.Writer that logs each line written to it. go-plugin
// writes a plugin's forwarded os.Stdout and os.Stderr to it from a single
// goroutine; it is not safe for concurrent use.
type lineLogger struct {
	log    hclog.Logger
	stream string
	buf    []byte
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		var line []byte
		if i := bytes.IndexByte(w.buf, '\n'); i >= 0 {
			line, w.buf = w.buf[:i], w.buf[i+1:]
		} else if len(w.buf) >= maxLine {
			line, w.buf = w.buf[:maxLine], w.buf[maxLine:]
		} else {
			break
		}
		w.logLine(bytes.TrimRight(line, "\r"))
	}
	w.buf = append([]byte(nil), w.buf...) // let the consumed prefix go
	return len(p), nil
}

// logLine logs one line: a JSON log entry of the plugin's hclog logger
// ("@level", "@message" and fields) at its level with its fields, anything
// else at info, tagged with the stream.
func (w *lineLogger) logLine(line []byte) {
	var entry map[string]any
	if len(line) > 0 && line[0] == '{' && json.Unmarshal(line, &entry) == nil {
		if msg, ok := entry["@message"].(string); ok {
			level, _ := entry["@level"].(string)
			keys := make([]string, 0, len(entry))
			for k := range entry {
				switch k {
				case "@level", "@message", "@timestamp":
				default:
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			args := make([]any, 0, 2*len(keys))
			for _, k := range keys {
				args = append(args, k, entry[k])
			}
			w.log.Log(levelOf(level), msg, args...)
			return
		}
	}
	w.log.Info(string(line), "stream", w.stream)
}

// levelOf is the level an hclog JSON entry names; info when it names none.
func levelOf(s string) hclog.Level {
	if l := hclog.LevelFromString(s); l != hclog.NoLevel {
		return l
	}
	return hclog.Info
}

// afterFirstLine passes on what is written to it after the first newline.
type afterFirstLine struct {
	w    io.Writer
	past bool
}

func (a *afterFirstLine) Write(p []byte) (int, error) {
	n := len(p)
	if !a.past {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return n, nil
		}
		a.past, p = true, p[i+1:]
	}
	if len(p) > 0 {
		_, _ = a.w.Write(p)
	}
	return n, nil
}

// readCloser joins a Reader and a Closer.
type readCloser struct {
	io.Reader
	io.Closer
}
