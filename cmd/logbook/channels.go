package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func newChannelCommand(a *app) *cobra.Command {
	return newGroup("channel", "Create channels, promote and roll back releases, set feature flags",
		`A channel (stream channel-<name>) maps to one current release; the units that
follow it converge to that release. Promoting changes the mapping, rolling
back restores the release that was current before. A channel also carries
feature flags.`,
		newChannelCreateCommand(a), newChannelLsCommand(a), newChannelShowCommand(a),
		newChannelPromoteCommand(a), newChannelRollbackCommand(a), newChannelFlagCommand(a),
	)
}

func newChannelCreateCommand(a *app) *cobra.Command {
	var description string
	c := &cobra.Command{
		Use:     "create NAME [--description TEXT]",
		Short:   "Create a channel",
		Example: `  logbook channel create stable --description "what the fleet runs"`,
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.channels.CreateChannel, &logbookv1.CreateChannelRequest{Channel: args[0], Description: description})
				if err != nil {
					return err
				}
				p.written(res, res.GetAppended(), "channel/"+args[0], "created")
				return nil
			})
		},
	}
	c.Flags().StringVar(&description, "description", "", "what the channel is for")
	return c
}

func newChannelLsCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List channels",
		Example: `  logbook channel ls`,
		Args:    checkedArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.channels.ListChannels, &logbookv1.ListChannelsRequest{}, func(res *logbookv1.ListChannelsResponse) error {
					if len(res.GetChannels()) == 0 {
						p.note("No channels found.")
						return nil
					}
					var rows [][]string
					for _, ch := range res.GetChannels() {
						rows = append(rows, []string{ch.GetName(), ch.GetCurrentRelease(), labelsText(ch.GetFlags()), ago(ch.GetUpdatedAt(), p.now), truncate(ch.GetDescription(), 50)})
					}
					p.rows([]string{"NAME", "RELEASE", "FLAGS", "UPDATED", "DESCRIPTION"}, rows)
					return nil
				})
			})
		},
	}
}

func newChannelShowCommand(a *app) *cobra.Command {
	var limit uint32
	c := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a channel and its promotion history",
		Example: `  logbook channel show stable
  logbook channel show stable -o yaml`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.channels.GetChannel, &logbookv1.GetChannelRequest{Channel: args[0]}, func(res *logbookv1.GetChannelResponse) error {
					s := res.GetState()
					cur := s.GetCurrent()
					p.fields([][2]string{
						{"Name", s.GetName()},
						{"Description", s.GetDescription()},
						{"Created", joinNonEmpty(stamp(s.GetCreatedAt(), p.now), "by", s.GetCreatedBy())},
						{"Version", fmt.Sprint(res.GetVersion())},
						{"Current release", cur.GetVersion()},
						{"Since", joinNonEmpty(stamp(cur.GetAt(), p.now), "by", cur.GetBy())},
						{"Rollback to", rollbackTarget(s)},
						{"Flags", labelsText(s.GetFeatureFlags())},
					})
					// The full history comes from the read model; the entity
					// keeps the latest changes, enough when it is not ready.
					hist, err := unary(ctx, c, c.channels.ChannelHistory, &logbookv1.ChannelHistoryRequest{Channel: args[0], Limit: limit})
					var rows [][]string
					if err == nil {
						for _, h := range hist.GetPromotions() {
							rows = append(rows, []string{fmt.Sprint(h.GetPosition()), ago(h.GetAt(), p.now), h.GetKind(), h.GetRelease(), h.GetPrevious(), h.GetBy(), h.GetReason()})
						}
					} else {
						p.note("(history from the entity: %v)", wrapAPIError(c.conn.Server, err))
						for _, h := range s.GetHistory() {
							rows = append(rows, []string{"", ago(h.GetAt(), p.now), enumText(h.GetAction()), h.GetVersion(), h.GetFromVersion(), h.GetBy(), h.GetReason()})
						}
					}
					if len(rows) > 0 {
						p.f("\nHistory:\n")
						p.rows([]string{"POSITION", "AT", "ACTION", "RELEASE", "PREVIOUS", "BY", "REASON"}, rows)
					}
					return nil
				})
			})
		},
	}
	c.Flags().Uint32VarP(&limit, "limit", "n", 20, "how many history entries to show")
	return c
}

func rollbackTarget(s *logbookv1.ChannelState) string {
	if n := len(s.GetPrevious()); n > 0 {
		return s.GetPrevious()[n-1].GetVersion()
	}
	return ""
}

func newChannelPromoteCommand(a *app) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   "promote NAME RELEASE [--reason TEXT]",
		Short: "Make a release a channel's current release",
		Long: `promote makes RELEASE the channel's current release; every unit that
follows the channel and is not pinned converges to it.`,
		Example: `  logbook channel promote stable 2026.11.3 --reason "canary healthy for 24h"`,
		Args:    exactArgs("NAME", "RELEASE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				reason = "promoted with logbook channel promote"
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.channels.PromoteRelease, &logbookv1.PromoteReleaseRequest{Channel: args[0], Release: args[1], Reason: reason})
				if err != nil {
					return err
				}
				p.written(res, res.GetAppended(), "channel/"+args[0], "now on "+args[1])
				if p.table() && res.GetAppended().GetEvents() > 0 {
					p.f("%d unit(s) follow the channel and will converge to %s.\n", res.GetUnits(), args[1])
				}
				return nil
			})
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why (recorded in the history)")
	return c
}

func newChannelRollbackCommand(a *app) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:     "rollback NAME [--reason TEXT]",
		Short:   "Restore the release that was current before",
		Example: `  logbook channel rollback stable --reason "error rate up"`,
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				reason = "rolled back with logbook channel rollback"
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.channels.RollbackChannel, &logbookv1.RollbackChannelRequest{Channel: args[0], Reason: reason})
				if err != nil {
					return err
				}
				p.written(res, res.GetAppended(), "channel/"+args[0], "rolled back to "+res.GetRelease())
				return nil
			})
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why (recorded in the history)")
	return c
}

func newChannelFlagCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "flag NAME KEY=VALUE... | KEY-...",
		Short: "Set or remove a channel's feature flags",
		Long:  `flag sets feature flags ("key=value") and removes them ("key-"), like unit label.`,
		Example: `  logbook channel flag stable new-ui=on
  logbook channel flag stable new-ui-`,
		Args: checkedArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ch, err := parseLabelChanges(args[1:])
			if err != nil {
				return newUsageError(cmd, err)
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				var reqs []*logbookv1.SetChannelFlagRequest
				for _, k := range sortedKeys(ch.Set) {
					reqs = append(reqs, &logbookv1.SetChannelFlagRequest{Channel: args[0], Key: k, Value: ch.Set[k]})
				}
				for _, k := range ch.Remove {
					reqs = append(reqs, &logbookv1.SetChannelFlagRequest{Channel: args[0], Key: k, Unset: true})
				}
				for _, req := range reqs {
					res, err := unary(ctx, c, c.channels.SetChannelFlag, req)
					if err != nil {
						return err
					}
					verb := "set to " + req.GetValue()
					if req.GetUnset() {
						verb = "removed"
					}
					p.written(res, res.GetAppended(), fmt.Sprintf("channel/%s flag %s", args[0], req.GetKey()), verb)
				}
				return nil
			})
		},
	}
}
