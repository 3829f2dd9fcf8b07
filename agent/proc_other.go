//go:build !unix

package agent

import (
	"errors"
	"os"
	"os/exec"
)

func setProcessGroup(*exec.Cmd) {}

func killProcessGroup(c *exec.Cmd) error {
	if c.Process == nil {
		return nil
	}
	return c.Process.Kill()
}

func terminateProcessGroup(c *exec.Cmd) error { return killProcessGroup(c) }

func fileID(os.FileInfo) string { return "" }

func killGroup(int) error { return errors.New("process groups not supported on this system") }
