// Package plugin implements the supervisor that runs a node's handler
// plugins as separate processes and routes calls to them.
//
// Each plugin is a binary built on pluginsdk, launched through go-plugin
// over gRPC after its SHA-256 is checked. The handles it serves that the
// configuration exposes become ordinary host handlers, so plugin and
// in-process handlers share one routing path, one set of limits and one set
// of statuses.
//
// The supervisor restarts a crashed plugin with jittered exponential
// backoff, and marks it failed after too many crashes within a window: its
// handles then answer "unavailable" at once until the plugin is applied
// again. Calls in flight when a plugin dies fail at once with "handler
// crashed". Every launch checks the binary's digest; a restart that fails
// counts as a crash. Apply of a binary that cannot serve (checksum
// mismatch, a configured handle it lacks) fails at once: a new plugin then
// exposes nothing, a swapped one keeps its old generation serving.
//
// A plugin can be swapped for a new binary or configuration at run time
// (the new generation starts and is checked before it gets calls; the old
// one drains; if the new one fails, the old one keeps serving) and revoked
// (its handles close at once; the process stops once no handle needs it).
package plugin
