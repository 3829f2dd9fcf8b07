//go:build !unix

package main

import "time"

// processCPU is not measured where getrusage(2) is missing.
func processCPU() (time.Duration, bool) { return 0, false }
