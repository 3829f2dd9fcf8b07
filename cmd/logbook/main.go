// Command logbook is Logbook's command line: the client of a Logbook control
// plane (logbook serve) over its Connect API, and the demo of the embedded
// event log. Run `logbook --help` for the commands.
//
// Exit codes: 0 success, 1 failure (an API error, a failed remote command, a
// broken hash chain), 2 usage error.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		PrintError(os.Stderr, err)
		os.Exit(ExitCode(err))
	}
}
