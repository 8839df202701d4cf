//go:build !unix

package datasets

import "os/exec"

// setProcessGroup is a no-op where process groups do not exist; cancellation kills the shell only.
func setProcessGroup(cmd *exec.Cmd) {}
