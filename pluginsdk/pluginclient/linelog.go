package pluginclient

import (
	"bytes"
	"strconv"

	"github.com/hashicorp/go-hclog"
)

// lineLogger is an io.Writer that logs each line written to it, as far as
// lim allows, each cut to maxOutputLine bytes. go-plugin writes a plugin's
// forwarded os.Stdout and os.Stderr to it from a single goroutine; it is not
// safe for concurrent use.
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

// logLine logs the line in buf, followed by note, if lim allows.
func (w *lineLogger) logLine(note string) {
	if w.lim.allow() {
		w.log.Info(string(bytes.TrimRight(w.buf, "\r"))+note, "stream", w.stream)
	}
}
