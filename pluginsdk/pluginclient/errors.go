package pluginclient

import (
	"errors"
	"fmt"
)

// Errors of Launch, Call, Send and Stop. A handler's own error is a
// *HandlerError; a deadline or cancellation of the caller's context is the
// context's error.
var (
	// ErrChecksum: the plugin binary's SHA-256 is not the configured one.
	ErrChecksum = errors.New("pluginclient: plugin binary checksum mismatch")
	// ErrCrashed: the plugin process died, or its connection broke, while
	// the call was in flight or before it was made.
	ErrCrashed = errors.New("pluginclient: plugin crashed")
	// ErrHandlerCrashed: the handler panicked; the plugin keeps serving.
	ErrHandlerCrashed = errors.New("pluginclient: handler crashed")
	// ErrNoSuchHandle: the plugin does not serve the handle.
	ErrNoSuchHandle = errors.New("pluginclient: no such handle")
	// ErrTooLarge: the arguments or the result exceed MaxMessageSize.
	ErrTooLarge = errors.New("pluginclient: message too large")
	// ErrUnavailable: the plugin is shutting down and refused the call.
	ErrUnavailable = errors.New("pluginclient: plugin unavailable")
	// ErrStopping: Stop had been called, so the call was refused without
	// reaching the plugin; it is safe to retry elsewhere.
	ErrStopping = errors.New("pluginclient: plugin is stopping")
	// ErrClosed: the call was in flight when Stop gave up waiting for it;
	// the handler may have run in part.
	ErrClosed = errors.New("pluginclient: plugin stopped during the call")
	// ErrProtocol: the plugin broke the protocol (bad description, unknown
	// status, malformed request reported by the plugin).
	ErrProtocol = errors.New("pluginclient: protocol error")
)

// HandlerError is the error a plugin's handler returned, as its message.
type HandlerError struct {
	Handle string
	Msg    string
}

func (e *HandlerError) Error() string {
	return fmt.Sprintf("pluginclient: handler %q: %s", e.Handle, e.Msg)
}
