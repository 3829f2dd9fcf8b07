package raft

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncData makes f's data durable, and its size when it grew, without
// syncing metadata that reading it back does not need.
func syncData(f *os.File) error {
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	return nil
}
