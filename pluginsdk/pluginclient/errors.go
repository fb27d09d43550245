package pluginclient

import (
	"errors"

	"github.com/peernet/peernet/rpc"
)

// Errors of Launch, Call, Send and Stop. A call's outcome other than ok is
// one of package rpc's outcomes (an *rpc.Error carrying the plugin's
// message, matching the status's sentinel with errors.Is); a deadline or
// cancellation of the caller's context is the context's error. The call
// errors below are outcomes too: each matches the rpc sentinel named.
var (
	// ErrChecksum: the plugin binary's SHA-256 is not the configured one.
	ErrChecksum = errors.New("pluginclient: plugin binary checksum mismatch")
	// ErrProtocol: the plugin broke the protocol (bad description, unknown
	// status).
	ErrProtocol = errors.New("pluginclient: protocol error")
	// ErrCrashed: the plugin process died, or its connection broke, while
	// the call was in flight or before it was made (rpc.ErrHandlerCrashed).
	ErrCrashed = rpc.Errorf(rpc.StatusHandlerCrashed, "plugin process died")
	// ErrStopping: Stop had been called, so the call was refused without
	// reaching the plugin; it is safe to retry elsewhere
	// (rpc.ErrUnavailable).
	ErrStopping = rpc.Errorf(rpc.StatusUnavailable, "plugin is stopping")
	// ErrClosed: the call was in flight when Stop gave up waiting for it;
	// the handler may have run in part (rpc.ErrUnavailable).
	ErrClosed = rpc.Errorf(rpc.StatusUnavailable, "plugin stopped during the call")
)
