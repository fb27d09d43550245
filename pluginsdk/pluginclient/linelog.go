package pluginclient

import (
	"bytes"

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
		w.log.Info(string(bytes.TrimRight(line, "\r")), "stream", w.stream)
	}
	w.buf = append([]byte(nil), w.buf...) // let the consumed prefix go
	return len(p), nil
}
