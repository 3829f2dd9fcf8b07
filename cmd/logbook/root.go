package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"
)

// Run executes the logbook command line args (without the program name),
// writing normal output to stdout and diagnostics to stderr. It returns when
// the command is done or ctx is cancelled.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "logbook",
		Short: "Logbook: an event-sourced control plane for edge fleets",
		Long: `Logbook keeps every edge unit, process, release and release channel as an
actor rebuilt from an append-only, hash-chained event log.

This build has one subcommand, demo, which shows the embedded event log at
work. The control-plane server (logbook serve) is coming.`,
		SilenceUsage:  true, // errors are not usage mistakes once a command runs
		SilenceErrors: true, // main prints the error once
	}
	root.AddCommand(newDemoCommand())
	return root
}

func newDemoCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Append, read and verify a few events in the embedded store",
		Long: `demo opens the embedded event store (in a temporary directory unless --dir is
given), appends events to the streams unit-ship1, unit-ship2 and
channel-stable, shows an optimistic-concurrency conflict and an idempotent
retry, replays a stream, reads the whole log with a category filter, prints
the head (position and hash) and verifies the hash chain.

With --dir the store is kept, so running the demo again appends to the same
log; without it the temporary directory is removed at the end.`,
		Example: `  logbook demo
  logbook demo --dir /tmp/logbook-demo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return Demo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), dir)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "store directory to create or reuse (default: a temporary directory, removed afterwards)")
	return cmd
}
