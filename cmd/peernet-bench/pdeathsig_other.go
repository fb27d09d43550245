//go:build !linux

package main

import "os/exec"

// setPdeathsig does nothing off Linux; launching PeerNet plugins is
// Linux-only anyway.
func setPdeathsig(*exec.Cmd) {}
