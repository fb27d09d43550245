//go:build !linux

package pluginclient

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"
)

var errUnsupported = errors.New("pluginclient: launching plugins is only supported on Linux")

// process is only implemented on Linux; elsewhere Launch fails.
type process struct {
	name    string
	log     hclog.Logger
	pid     int
	exited  chan struct{}
	waited  chan struct{}
	waitErr error
}

func newProcess(LaunchConfig, *Pinned, *os.File, []string, hclog.Logger, io.Writer) (*process, error) {
	return nil, errUnsupported
}

func (p *process) Start(context.Context) error                      { return errUnsupported }
func (p *process) Wait(context.Context) error                       { return errUnsupported }
func (p *process) Kill(context.Context) error                       { return nil }
func (p *process) Stdout() io.ReadCloser                            { return nil }
func (p *process) Stderr() io.ReadCloser                            { return nil }
func (p *process) Name() string                                     { return "" }
func (p *process) ID() string                                       { return "" }
func (p *process) Diagnose(context.Context) string                  { return "" }
func (p *process) startDone()                                       {}
func (p *process) closeOutput()                                     {}
func (p *process) startFailure(err error, _ bool) error             { return err }
func (p *process) PluginToHost(n, a string) (string, string, error) { return n, a, nil }
func (p *process) HostToPlugin(n, a string) (string, string, error) { return n, a, nil }
