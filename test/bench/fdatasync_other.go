//go:build !linux

package main

import "os"

// fdatasync falls back to File.Sync (fsync, or F_FULLFSYNC on macOS) where
// fdatasync(2) is not available.
func fdatasync(f *os.File) error { return f.Sync() }
