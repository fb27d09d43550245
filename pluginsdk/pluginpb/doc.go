// Package pluginpb implements the wire messages and gRPC services of the
// PeerNet plugin protocol, generated from peernet_plugin.proto. The .pb.go
// files are committed; regenerating them needs protoc, protoc-gen-go and
// protoc-gen-go-grpc on PATH (tests never do).
package pluginpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative peernet_plugin.proto
