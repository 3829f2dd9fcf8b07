// Command logbook-agent runs Logbook's agent on an edge unit: it enrols with
// the control plane once, then runs signed commands, follows logs,
// supervises processes and spools the unit's events while offline. See
// package agent for what it does and where it keeps its state.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "logbook-agent:", err)
		os.Exit(1)
	}
}
