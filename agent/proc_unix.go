//go:build unix

package agent

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup makes c the leader of its own process group, so that
// stopping it also stops what it started; on Linux the child also gets
// SIGKILL when the agent dies (see childAttr).
func setProcessGroup(c *exec.Cmd) {
	c.SysProcAttr = childAttr()
}

func killProcessGroup(c *exec.Cmd) error { return signalProcessGroup(c, syscall.SIGKILL) }

func terminateProcessGroup(c *exec.Cmd) error { return signalProcessGroup(c, syscall.SIGTERM) }

func signalProcessGroup(c *exec.Cmd, sig syscall.Signal) error {
	if c.Process == nil {
		return nil
	}
	if err := syscall.Kill(-c.Process.Pid, sig); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}

// killGroup sends SIGKILL to process group pgid; a group that is gone is
// not an error.
func killGroup(pgid int) error {
	if pgid <= 1 {
		return fmt.Errorf("refusing to signal process group %d", pgid)
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}

// fileID names the file behind fi (device and inode), so that a rotated
// file is told apart from its successor across agent restarts.
func fileID(fi os.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return ""
}
