package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func newAuditCommand(a *app) *cobra.Command {
	var at, diff string
	c := &cobra.Command{
		Use:   "audit STREAM [--at TIME|POSITION] [--diff TIME|POSITION]",
		Short: "Show an entity as it was at a point in its history, and what changed",
		Long: `audit rebuilds an entity (a unit, process, release or channel) by replaying
its stream up to a point, and prints its state then: what the control plane
believed at that time. With --diff it also rebuilds it at a second point and
prints the fields that changed between the two, and the events in between
(who changed what).

A point is:
  1207                    a log position (a bare number)
  now                     the default
  2026-11-22T10:00:00Z    an RFC 3339 time
  2026-11-22 10:00        a local time (2026-11-22 alone is midnight)
  -2h, "2h ago", 90m, 1d  an age (always in the past; d is 24 hours)

The state prints as YAML (-o table and yaml) or JSON (-o json).`,
		Example: `  logbook audit unit-ship1
  logbook audit unit-ship1 --at "2h ago"
  logbook audit unit-ship1 --at 2026-11-22T08:00:00Z --diff now
  logbook audit channel-stable --at 1200 --diff 1500
  logbook audit timeline --stream unit-ship1 --since -1d`,
		Args: exactArgs("STREAM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			now := a.now()
			from, err := optionalPoint(at, now)
			if err != nil {
				return usageErrorf(cmd, "--at: %v", err)
			}
			if !cmd.Flags().Changed("diff") {
				return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
					res, err := unary(ctx, c, c.audit.StateAt, &logbookv1.StateAtRequest{Stream: args[0], At: from})
					if err != nil {
						return err
					}
					printStateAt(p, res)
					return nil
				})
			}
			to, err := optionalPoint(diff, now)
			if err != nil {
				return usageErrorf(cmd, "--diff: %v", err)
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.audit.Diff, &logbookv1.DiffRequest{Stream: args[0], From: from, To: to})
				if err != nil {
					return err
				}
				printDiff(p, res, from, to)
				return nil
			})
		},
	}
	c.Flags().StringVar(&at, "at", "now", "the point to show: a time or a log position")
	c.Flags().StringVar(&diff, "diff", "now", "a second point: show what changed from --at to it")
	c.AddCommand(newAuditTimelineCommand(a))
	return c
}

// optionalPoint parses a point; "now" and "" are nil (the server's now).
func optionalPoint(s string, now time.Time) (*logbookv1.AuditPoint, error) {
	if s == "" || s == "now" {
		return nil, nil
	}
	return parsePoint(s, now, time.Local)
}

// stateView is a StateAtResponse for -o json|yaml, with the state as an
// object rather than a string of JSON.
func stateView(r *logbookv1.StateAtResponse) map[string]any {
	v := map[string]any{
		"stream":    r.GetStream(),
		"version":   r.GetVersion(),
		"position":  r.GetPosition(),
		"stateType": r.GetStateType(),
	}
	if r.GetTime() != nil {
		v["time"] = r.GetTime().AsTime().UTC().Format(time.RFC3339Nano)
	}
	if s := r.GetStateJson(); s != "" && json.Valid([]byte(s)) {
		v["state"] = json.RawMessage(s)
	} else {
		v["state"] = s
	}
	return v
}

func printStateAt(p *display, r *logbookv1.StateAtResponse) {
	if !p.table() {
		p.value(stateView(r))
		return
	}
	p.f("# %s at version %d (position %d, %s)\n", r.GetStream(), r.GetVersion(), r.GetPosition(), timeText(r.GetTime(), p.now))
	if r.GetVersion() == 0 {
		p.f("# the stream had no events yet\n")
	}
	if s := r.GetStateJson(); s != "" {
		p.rawJSON([]byte(s))
	}
}

func timeText(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return "no time"
	}
	return stamp(t, now)
}

func printDiff(p *display, r *logbookv1.DiffResponse, from, to *logbookv1.AuditPoint) {
	if !p.table() {
		changes := make([]map[string]any, len(r.GetChanges()))
		for i, ch := range r.GetChanges() {
			changes[i] = map[string]any{"path": ch.GetPath(), "before": rawOrNull(ch.GetBefore()), "after": rawOrNull(ch.GetAfter())}
		}
		evs := make([]json.RawMessage, 0, len(r.GetEvents()))
		for _, e := range r.GetEvents() {
			if b, err := protoJSON(e); err == nil {
				evs = append(evs, b)
			}
		}
		p.value(map[string]any{"from": stateView(r.GetFrom()), "to": stateView(r.GetTo()), "changes": changes, "events": evs})
		return
	}
	f, t := r.GetFrom(), r.GetTo()
	p.f("%s from version %d (%s, %s)\n", f.GetStream(), f.GetVersion(), pointText(from), timeText(f.GetTime(), p.now))
	p.f("%*s to version %d (%s, %s)\n\n", len(f.GetStream()), "", t.GetVersion(), pointText(to), timeText(t.GetTime(), p.now))
	if len(r.GetChanges()) == 0 {
		p.f("No field changed.\n")
	} else {
		rows := make([][]string, len(r.GetChanges()))
		for i, ch := range r.GetChanges() {
			rows[i] = []string{ch.GetPath(), truncate(ch.GetBefore(), 60), truncate(ch.GetAfter(), 60)}
		}
		p.rows([]string{"FIELD", "BEFORE", "AFTER"}, rows)
	}
	if len(r.GetEvents()) > 0 {
		p.f("\nEvents:\n")
		rows := make([][]string, len(r.GetEvents()))
		for i, e := range r.GetEvents() {
			rows[i] = []string{fmt.Sprint(e.GetPosition()), stamp(e.GetTime(), p.now), fmt.Sprint(e.GetVersion()), shortType(e.GetType()), e.GetPrincipal()}
		}
		p.rows([]string{"POSITION", "TIME", "VERSION", "TYPE", "BY"}, rows)
	}
}

// rawOrNull turns a JSON value text into a raw value ("" is null).
func rawOrNull(s string) any {
	if s == "" || !json.Valid([]byte(s)) {
		if s == "" {
			return nil
		}
		return s
	}
	return json.RawMessage(s)
}

func newAuditTimelineCommand(a *app) *cobra.Command {
	var stream, principal, since, until string
	var limit uint32
	c := &cobra.Command{
		Use:   "timeline [--stream S] [--principal P] [--since TIME] [--until TIME]",
		Short: "List who changed what, when",
		Long: `timeline lists the log's events with who caused them, oldest first, from the
audit read model. Times take the forms of logbook audit (RFC 3339, a local
date and time, or an age like -2h or "2h ago").`,
		Example: `  logbook audit timeline --since -1d
  logbook audit timeline --stream unit-ship1
  logbook audit timeline --principal operator:alice --since 2026-11-22`,
		Args: checkedArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &logbookv1.AuditTimelineRequest{Stream: stream, Principal: principal, Limit: limit}
			now := a.now()
			if since != "" {
				t, err := parseTime(since, now, time.Local)
				if err != nil {
					return usageErrorf(cmd, "--since: %v", err)
				}
				req.Since = timestamppb.New(t)
			}
			if until != "" {
				t, err := parseTime(until, now, time.Local)
				if err != nil {
					return usageErrorf(cmd, "--until: %v", err)
				}
				req.Until = timestamppb.New(t)
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.audit.Timeline, req, func(res *logbookv1.AuditTimelineResponse) error {
					if len(res.GetEntries()) == 0 {
						p.note("No events found.")
						return nil
					}
					rows := make([][]string, len(res.GetEntries()))
					for i, e := range res.GetEntries() {
						rows[i] = []string{fmt.Sprint(e.GetPosition()), e.GetTime().AsTime().UTC().Format(time.RFC3339), e.GetStream(), fmt.Sprint(e.GetVersion()), shortType(e.GetType()), e.GetPrincipal()}
					}
					p.rows([]string{"POSITION", "TIME", "STREAM", "VERSION", "TYPE", "BY"}, rows)
					if res.GetNext() != 0 {
						p.note("(more: raise --limit or narrow --since)")
					}
					return nil
				})
			})
		},
	}
	f := c.Flags()
	f.StringVar(&stream, "stream", "", "only this stream")
	f.StringVar(&principal, "principal", "", "only events caused by this principal")
	f.StringVar(&since, "since", "", "only events at or after this time")
	f.StringVar(&until, "until", "", "only events before this time")
	f.Uint32VarP(&limit, "limit", "n", 100, "how many events to show")
	return c
}
