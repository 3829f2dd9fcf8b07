package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

// Run executes the logbook command line args (without the program name),
// writing normal output to stdout and diagnostics to stderr. It returns when
// the command is done or ctx is cancelled. ExitCode maps the error to the
// process exit code and PrintError prints it.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRootCommand(newApp())
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

// defaultTimeout limits each unary API request.
const defaultTimeout = 30 * time.Second

func newRootCommand(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "logbook",
		Short: "Logbook: an event-sourced control plane for edge fleets",
		Long: `Logbook keeps every edge unit, process, release and release channel as an
actor rebuilt from an append-only, hash-chained event log.

The commands below talk to a control plane (logbook serve) over its Connect
API, like kubectl talks to a cluster: list and change units, publish and
promote releases, run commands on units and wait for their results, follow
the log, audit what an entity looked like at any point in its history, and
verify that the history was not rewritten.

Connection:
  server  --server, else $LOGBOOK_SERVER, else the config file, else
          ` + defaultServer + `
  token   --token, else admin.token in --data-dir, else $LOGBOOK_TOKEN,
          else admin.token in $LOGBOOK_DATA, else the config file
The config file is $LOGBOOK_CONFIG or ~/.config/logbook/config.yaml; logbook
login writes it. On the machine that runs logbook serve, --data-dir (or
$LOGBOOK_DATA) pointing at its data directory uses the bootstrap admin token
the server wrote there.

Output: -o table (default, for people), json or yaml (protobuf JSON of the
API's messages, for scripts). Streams (events tail --follow, cmd run) print
one JSON object per line with -o json.

Exit codes: 0 success, 1 failure, 2 usage error.`,
		Example: `  logbook login --server http://cp.example:8080 --token "$TOKEN"
  logbook unit ls --selector site=north
  logbook cmd run --selector site=north -- uptime
  logbook audit unit-ship1 --at "2h ago" --diff now`,
		Args:                       cobra.ArbitraryArgs,
		RunE:                       groupRunE,
		SuggestionsMinimumDistance: 2,
		SilenceUsage:               true, // errors are not usage mistakes once a command runs
		SilenceErrors:              true, // main prints the error once
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return newUsageError(c, err) })

	pf := root.PersistentFlags()
	pf.StringVar(&a.conn.server, "server", defaultServer, "URL of the logbook serve API (env "+envServer+")")
	pf.StringVar(&a.conn.token, "token", "", "bearer token (env "+envToken+"; prefer the environment or logbook login: the command line is visible to other users)")
	pf.StringVar(&a.conn.dataDir, "data-dir", "", "data directory of a local logbook serve: use its admin token (env "+envData+")")
	pf.StringVarP(&a.output, "output", "o", formatTable, "output format: table, json or yaml")
	pf.DurationVar(&a.timeout, "timeout", defaultTimeout, "time limit of each API request (0: none); streams such as --follow are not limited")

	root.AddGroup(
		&cobra.Group{ID: "fleet", Title: "Fleet:"},
		&cobra.Group{ID: "history", Title: "History and audit:"},
		&cobra.Group{ID: "admin", Title: "Access and operations:"},
	)
	for _, c := range []*cobra.Command{newUnitCommand(a), newProcessCommand(a), newReleaseCommand(a), newChannelCommand(a), newCmdCommand(a)} {
		c.GroupID = "fleet"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newEventsCommand(a), newAuditCommand(a), newVerifyCommand(a), newProjectionsCommand(a)} {
		c.GroupID = "history"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newLoginCommand(a), newTokenCommand(a), newWhoAmICommand(a), newClusterCommand(a)} {
		c.GroupID = "admin"
		root.AddCommand(c)
	}

	// The server and local tools. serve and dev have their own --data-dir,
	// which shadows the global one.
	root.AddGroup(&cobra.Group{ID: "server", Title: "Running a control plane:"})
	for _, c := range []*cobra.Command{newServeCommand(), newDevCommand(), newDemoCommand()} {
		c.GroupID = "server"
		root.AddCommand(withoutClientFlags(c))
	}
	return root
}

// groupRunE runs a command that only groups others: without arguments it
// prints its help; with one it is an unknown subcommand (a usage error, with
// suggestions).
func groupRunE(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return c.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return usageErrorf(c, "%s", msg)
}

// newGroup returns a command that groups subcommands.
func newGroup(use, short, long string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
		// SuggestionsFor needs a distance; cobra's default of 2 is set only
		// on its own path.
		SuggestionsMinimumDistance: 2,
	}
	c.AddCommand(subs...)
	return c
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
log; without it the temporary directory is removed at the end. demo needs no
server.`,
		Example: `  logbook demo
  logbook demo --dir /tmp/logbook-demo`,
		Args: checkedArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return Demo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), dir)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "store directory to create or reuse (default: a temporary directory, removed afterwards)")
	return cmd
}
