package pluginclient

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strconv"

	"github.com/hashicorp/go-hclog"
)

// lineLogger is an io.Writer that logs each line written to it, as far as
// lim allows, each cut to maxOutputLine bytes. Each of a plugin's streams
// has its own, written by one goroutine (go-plugin's stderr reader, or the
// read of stdout); it is not safe for concurrent use.
type lineLogger struct {
	log    hclog.Logger
	stream string
	lim    *outputLimiter
	buf    []byte // the line so far, at most maxOutputLine bytes
	cut    bool   // the line was over maxOutputLine and is logged: drop the rest
}

func (w *lineLogger) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		if !w.cut {
			if room := maxOutputLine - len(w.buf); len(part) > room {
				w.buf = append(w.buf, part[:room]...)
				w.logLine(" [line cut at " + strconv.Itoa(maxOutputLine) + " bytes]")
				w.cut = true
			} else {
				w.buf = append(w.buf, part...)
			}
		}
		if i < 0 {
			break
		}
		if !w.cut {
			w.logLine("")
		}
		w.buf, w.cut = w.buf[:0], false
		p = p[i+1:]
	}
	return n, nil
}

// logLine logs the line in buf, followed by note, if lim allows: a whole
// JSON log entry of the plugin's hclog logger ("@level", "@message" and
// fields) at its level with its fields, anything else at info, tagged
// with the stream.
func (w *lineLogger) logLine(note string) {
	if !w.lim.allow() {
		return
	}
	line := bytes.TrimRight(w.buf, "\r")
	var entry map[string]any
	if note == "" && len(line) > 0 && line[0] == '{' && json.Unmarshal(line, &entry) == nil {
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
	w.log.Info(string(line)+note, "stream", w.stream)
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
