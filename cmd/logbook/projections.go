package main

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func newProjectionsCommand(a *app) *cobra.Command {
	return newGroup("projections", "List and rebuild read models",
		`Projections turn the log into read models (the fleet, releases, commands,
audit timeline). Each keeps a checkpoint; its lag is the head position minus
the checkpoint. A rebuild replays the log from position 0 into new tables
while the old ones keep serving, then switches over.`,
		newProjectionsLsCommand(a), newProjectionsRebuildCommand(a),
	)
}

func newProjectionsLsCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List projections with their state and lag",
		Example: `  logbook projections ls`,
		Args:    checkedArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.projections.ListProjections, &logbookv1.ListProjectionsRequest{}, func(res *logbookv1.ListProjectionsResponse) error {
					var rows [][]string
					for _, s := range res.GetProjections() {
						rows = append(rows, []string{s.GetName(), fmt.Sprint(s.GetVersion()), s.GetState(), yesNo(s.GetReady()), fmt.Sprint(s.GetCheckpoint()),
							fmt.Sprint(s.GetHead()), fmt.Sprint(s.GetLag()), fmt.Sprintf("%.0f", s.GetEventsPerSecond()), fmt.Sprint(s.GetErrors()), truncate(s.GetLastError(), 60)})
					}
					p.rows([]string{"NAME", "VERSION", "STATE", "READY", "CHECKPOINT", "HEAD", "LAG", "EVENTS/S", "ERRORS", "LAST ERROR"}, rows)
					return nil
				})
			})
		},
	}
}

func newProjectionsRebuildCommand(a *app) *cobra.Command {
	var progress bool
	c := &cobra.Command{
		Use:   "rebuild NAME",
		Short: "Rebuild a read model from the start of the log, without downtime",
		Long: `rebuild runs the projection from position 0 into new tables while the
current ones keep serving, then switches atomically, and prints progress
until then (on standard error when it is a terminal, or with --progress).
Ctrl-C stops watching; the rebuild goes on.`,
		Example: `  logbook projections rebuild fleet`,
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			showProgress := progress || isTerminal(cmd.ErrOrStderr())
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				stream, err := c.projections.RebuildProjection(ctx, connect.NewRequest(&logbookv1.RebuildProjectionRequest{Name: args[0]}))
				if err != nil {
					return err
				}
				defer stream.Close()
				prog := newProgressLine(p.diag, showProgress)
				var final *logbookv1.RebuildProjectionResponse
				for stream.Receive() {
					m := stream.Msg()
					if m.GetDone() {
						final = m
						break
					}
					s := m.GetStatus()
					pct := 100.0
					if s.GetHead() > 0 {
						pct = 100 * float64(s.GetCheckpoint()) / float64(s.GetHead())
					}
					prog.set("rebuilding %s v%d: %d/%d (%.0f%%), %.0f events/s", s.GetName(), s.GetVersion(), s.GetCheckpoint(), s.GetHead(), pct, s.GetEventsPerSecond())
				}
				prog.end()
				if err := stream.Err(); err != nil {
					return err
				}
				if final == nil {
					return errors.New("rebuild: the server ended without a result")
				}
				if !p.table() {
					p.message(final)
					return nil
				}
				s := final.GetStatus()
				p.f("projection %s rebuilt as version %d: %s at position %d\n", s.GetName(), s.GetVersion(), s.GetState(), s.GetCheckpoint())
				return nil
			})
		},
	}
	c.Flags().BoolVar(&progress, "progress", false, "print progress even when standard error is not a terminal")
	return c
}
