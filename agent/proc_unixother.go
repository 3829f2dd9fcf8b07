//go:build unix && !linux

package agent

import "syscall"

// childAttr: own process group. (No Pdeathsig outside Linux: a child of an
// agent killed with SIGKILL keeps running, and is not found again either;
// see running.go.)
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
