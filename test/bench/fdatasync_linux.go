package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync uses fdatasync(2), which skips flushing metadata that reads do
// not need (mtime) but does flush a grown file size: the cheapest durable
// append a log can do on Linux.
func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}
