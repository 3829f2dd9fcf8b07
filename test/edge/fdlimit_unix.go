//go:build unix

package edge

import "syscall"

// OpenFileLimit is the process's open-file limit (soft; Go raises it to
// the hard limit at start-up), or 0 when unknown.
func OpenFileLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return int(min(r.Cur, 1<<30))
}
