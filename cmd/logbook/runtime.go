package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strings"

	"github.com/dustin/go-humanize"
)

// The Go runtime's garbage collector, as a control-plane node sets it.
//
// With Go's default (GOGC=100) a node with a small live heap collects
// often: under 2,000 edge commands/s, about once a second. Each cycle's
// marking then competes for two cores with the edge link, and commands in
// flight during it wait (test/bench command-rtt: p99 19-21 ms with
// GOGC=100, 3-5 ms with 400; p50 about 1 ms either way). A higher
// percentage collects less often, and a soft memory limit keeps the heap
// bounded when the live heap is large (10,000 connected units hold about
// 200 MiB), so the node stays within its memory budget.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = "768MiB"
)

// runtimeSettings are the --gc-percent and --memory-limit values.
type runtimeSettings struct {
	GCPercent   int
	MemoryLimit string
	limit       int64 // parsed MemoryLimit; 0: none
}

func (r *runtimeSettings) resolve() error {
	if r.GCPercent < -1 || r.GCPercent == 0 {
		return fmt.Errorf("--gc-percent %d: want a positive percentage, or -1 for no collection but at the memory limit", r.GCPercent)
	}
	switch v := strings.TrimSpace(r.MemoryLimit); v {
	case "0", "off", "":
		r.limit = 0
	default:
		n, err := humanize.ParseBytes(v)
		if err != nil || n > math.MaxInt64 {
			return fmt.Errorf("--memory-limit %q: want a size such as 768MiB or 2GiB, or off", r.MemoryLimit)
		}
		r.limit = int64(n)
	}
	if r.GCPercent == -1 && r.limit == 0 {
		return fmt.Errorf("--gc-percent -1 needs a --memory-limit: without one the heap would grow without bound")
	}
	return nil
}

// apply sets the garbage collector, unless the environment's GOGC or
// GOMEMLIMIT (the Go runtime's own settings) already did: those win.
func (r runtimeSettings) apply(logger *slog.Logger) {
	gc, limit := "GOGC="+os.Getenv("GOGC"), "GOMEMLIMIT="+os.Getenv("GOMEMLIMIT")
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(r.GCPercent)
		gc = fmt.Sprint(r.GCPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		if r.limit > 0 {
			debug.SetMemoryLimit(r.limit)
			limit = humanize.IBytes(uint64(r.limit))
		} else {
			limit = "none"
		}
	}
	logger.Debug("go runtime", "gc_percent", gc, "memory_limit", limit)
}
