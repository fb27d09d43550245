package main

import (
	"os/exec"
	"syscall"
)

// setPdeathsig has the kernel kill cmd's process when this one dies, so an
// interrupted benchmark leaves no plugin behind.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
