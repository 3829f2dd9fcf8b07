package main

import (
	"os"
	"runtime/debug"
)

// The scenarios that measure what a `logbook serve` process does (the
// control plane of command-rtt, the cluster nodes of raft-append) run with
// the garbage-collector settings serve uses by default
// (cmd/logbook/runtime.go: --gc-percent 400, --memory-limit 768MiB), unless
// GOGC or GOMEMLIMIT is set in the environment, which serve lets win too.
const (
	serveGCPercent   = 400
	serveMemoryLimit = 768 << 20
)

// serveRuntime applies serve's settings to this process and returns a
// function that restores the previous ones.
func serveRuntime() (restore func()) {
	gc, limit := -1, int64(-1)
	if _, set := os.LookupEnv("GOGC"); !set {
		gc = debug.SetGCPercent(serveGCPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		limit = debug.SetMemoryLimit(serveMemoryLimit)
	}
	return func() {
		if gc != -1 {
			debug.SetGCPercent(gc)
		}
		if limit != -1 {
			debug.SetMemoryLimit(limit)
		}
	}
}
