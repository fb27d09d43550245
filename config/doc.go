// Package config implements the PeerNet operator's configuration file: an
// HCL file describing the node, its trusted peers, the plugins whose handles
// it exposes, mDNS discovery and the metrics endpoint.
//
// Load and Parse decode and validate a whole file in one pass and return a
// File with typed values (durations, PeerIDs, absolute paths) and every
// default applied. Any problem with the file's content is reported as a
// *DiagError holding one HCL diagnostic per problem, each pointing at
// file:line:column, so an operator can fix them all in one edit.
//
// This is the only PeerNet package that imports HCL. The schema lives in one
// table (see schema.go) from which the decoder, the defaults and the
// documentation test (docs/configuration.md) are all driven.
package config
