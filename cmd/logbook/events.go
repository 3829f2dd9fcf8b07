package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func newEventsCommand(a *app) *cobra.Command {
	return newGroup("events", "Read and follow the event log",
		`The log is the system of record: every change of every entity is an event,
in a stream ("unit-ship1") and at a global position. These commands read it.`,
		newEventsTailCommand(a), newEventsHeadCommand(a),
	)
}

// tailOptions are the flags of events tail.
type tailOptions struct {
	stream     string
	categories []string
	types      []string
	n          int
	follow     bool
}

func newEventsTailCommand(a *app) *cobra.Command {
	var o tailOptions
	c := &cobra.Command{
		Use:   "tail [STREAM] [-n N] [--follow] [--category C]... [--type T]...",
		Short: "Print the last events of the log or of one stream, and follow new ones",
		Long: `tail prints the last N events (default 10) of the whole log, of one stream,
or of the categories and types given, oldest first; with --follow it then
prints new events as they are appended, until Ctrl-C.

Types are protobuf names, with or without the "logbook.v1." package
(UnitLabelsSet). With -o json each event is one line of JSON with its payload
decoded.`,
		Example: `  logbook events tail
  logbook events tail unit-ship1 -n 50
  logbook events tail --follow --category unit --type UnitCommandSucceeded
  logbook events tail -f -n 0 -o json | jq .payload`,
		Args: checkedArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.stream = args[0]
			}
			if o.n < 0 {
				return usageErrorf(cmd, "-n %d: must not be negative", o.n)
			}
			for i, t := range o.types {
				o.types[i] = fullType(t)
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return tail(ctx, c, p, o)
			})
		},
	}
	f := c.Flags()
	f.IntVarP(&o.n, "lines", "n", 10, "how many past events to print (0: none)")
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing new events")
	f.StringArrayVar(&o.categories, "category", nil, `only streams of this category ("unit" for unit-*; repeatable)`)
	f.StringArrayVar(&o.types, "type", nil, "only events of this type (repeatable)")
	return c
}

// fullType adds the logbook.v1 package to a bare event type name.
func fullType(t string) string {
	if strings.Contains(t, ".") {
		return t
	}
	return "logbook.v1." + t
}

// tail prints the last o.n matching events, then follows when asked.
func tail(ctx context.Context, c *client, p *display, o tailOptions) error {
	head, err := unary(ctx, c, c.events.Head, &logbookv1.HeadRequest{})
	if err != nil {
		return err
	}
	var last []*logbookv1.Event
	if o.n > 0 {
		if o.stream != "" {
			last, err = lastOfStream(ctx, c, o, head.GetPosition())
		} else {
			last, err = lastOfLog(ctx, c, o, head.GetPosition())
		}
		if err != nil {
			return err
		}
	}
	for _, ev := range last {
		printEvent(p, ev)
	}
	if !o.follow {
		if len(last) == 0 && p.table() {
			p.note("No events.")
		}
		return nil
	}
	req := &logbookv1.FollowRequest{FromPosition: head.GetPosition() + 1, Stream: o.stream}
	if o.stream == "" {
		req.Categories, req.Types = o.categories, o.types
	}
	stream, err := c.events.Follow(ctx, connect.NewRequest(req))
	if err != nil {
		return err
	}
	defer stream.Close()
	for stream.Receive() {
		if ev := stream.Msg().GetEvent(); matches(ev, o) {
			printEvent(p, ev)
		}
	}
	if err := stream.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil // Ctrl-C ends following normally
}

// matches applies the type filter to a single stream's events (the server
// filters streams by stream name only).
func matches(ev *logbookv1.Event, o tailOptions) bool {
	return len(o.types) == 0 || slices.Contains(o.types, ev.GetType())
}

// lastOfStream returns the last o.n events of o.stream up to position head.
func lastOfStream(ctx context.Context, c *client, o tailOptions, head uint64) ([]*logbookv1.Event, error) {
	var ring []*logbookv1.Event
	from := uint64(1)
	for {
		res, err := unary(ctx, c, c.events.ReadStream, &logbookv1.ReadStreamRequest{Stream: o.stream, FromVersion: from, Limit: 1000})
		if err != nil {
			return nil, err
		}
		evs := res.GetEvents()
		for _, ev := range evs {
			if ev.GetPosition() > head {
				return ring, nil
			}
			if matches(ev, o) {
				ring = append(ring, ev)
				if len(ring) > o.n {
					ring = ring[1:]
				}
			}
		}
		if len(evs) == 0 {
			return ring, nil
		}
		from = evs[len(evs)-1].GetVersion() + 1
	}
}

// lastOfLog returns the last o.n events of the log matching the filters, up
// to position head: it reads windows backwards from head, each new window
// eight times the last and reading only positions not read yet, until they
// hold o.n events or reach position 1.
func lastOfLog(ctx context.Context, c *client, o tailOptions, head uint64) ([]*logbookv1.Event, error) {
	var got []*logbookv1.Event
	upto, window := head, max(uint64(o.n), 1)
	for upto > 0 {
		from := uint64(1)
		if upto > window {
			from = upto - window + 1
		}
		var part []*logbookv1.Event
		pos := from
		for pos <= upto {
			res, err := unary(ctx, c, c.events.ReadAll, &logbookv1.ReadAllRequest{FromPosition: pos, Categories: o.categories, Types: o.types, Limit: 1000})
			if err != nil {
				return nil, err
			}
			for _, ev := range res.GetEvents() {
				if ev.GetPosition() <= upto {
					part = append(part, ev)
				}
			}
			if len(res.GetEvents()) == 0 || res.GetNext() <= pos {
				break
			}
			pos = res.GetNext()
		}
		got = append(part, got...)
		if len(got) >= o.n {
			break
		}
		upto = from - 1
		if window > upto/8 {
			window = max(upto, 1) // the rest of the log, without overflowing
		} else {
			window *= 8
		}
	}
	if len(got) > o.n {
		got = got[len(got)-o.n:]
	}
	return got, nil
}

// printEvent prints one event: a table line, or a JSON line / YAML
// document with the payload decoded.
func printEvent(p *display, ev *logbookv1.Event) {
	if !p.table() {
		p.streamed(eventView(ev))
		return
	}
	p.f("%-8d %s  %-28s v%-4d %-28s %-16s %s\n", ev.GetPosition(), ev.GetTime().AsTime().UTC().Format("2006-01-02T15:04:05.000Z"),
		ev.GetStream(), ev.GetVersion(), shortType(ev.GetType()), ev.GetMetadata().GetPrincipal(), truncate(payloadText(ev), 100))
}

// eventView is an event for -o json|yaml: the envelope with the payload
// decoded (when its type is known) instead of raw bytes.
func eventView(ev *logbookv1.Event) map[string]any {
	v := map[string]any{
		"position":  fmt.Sprint(ev.GetPosition()),
		"stream":    ev.GetStream(),
		"version":   fmt.Sprint(ev.GetVersion()),
		"time":      ev.GetTime().AsTime().UTC().Format(time.RFC3339Nano),
		"type":      ev.GetType(),
		"id":        hex.EncodeToString(ev.GetId()),
		"principal": ev.GetMetadata().GetPrincipal(),
		"hash":      hex.EncodeToString(ev.GetHash()),
	}
	if id := ev.GetMetadata().GetCorrelationId(); id != "" {
		v["correlationId"] = id
	}
	if id := ev.GetMetadata().GetCausationId(); id != "" {
		v["causationId"] = id
	}
	if m, err := decodePayload(ev); err == nil {
		if b, err := protoJSON(m); err == nil {
			v["payload"] = json.RawMessage(b)
		}
	} else {
		v["data"] = ev.GetData()
	}
	return v
}

// decodePayload decodes an event's data as the message its type names.
func decodePayload(ev *logbookv1.Event) (proto.Message, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(ev.GetType()))
	if err != nil {
		return nil, err
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(ev.GetData(), m); err != nil {
		return nil, err
	}
	return m, nil
}

// payloadText is the payload as compact JSON, or its size when its type is
// unknown here.
func payloadText(ev *logbookv1.Event) string {
	m, err := decodePayload(ev)
	if err != nil {
		return fmt.Sprintf("(%d bytes)", len(ev.GetData()))
	}
	b, err := protoJSON(m)
	if err != nil {
		return fmt.Sprintf("(%d bytes)", len(ev.GetData()))
	}
	return string(b)
}

func newEventsHeadCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "head",
		Short: "Print the log's head: its last position and hash",
		Long: `head prints the last position of the log and its hash. The pair names the
state of the whole log: the hash chains every event before it.`,
		Example: `  logbook events head`,
		Args:    checkedArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.events.Head, &logbookv1.HeadRequest{}, func(res *logbookv1.HeadResponse) error {
					p.fields([][2]string{{"Position", fmt.Sprint(res.GetPosition())}, {"Hash", hex.EncodeToString(res.GetHash())}})
					return nil
				})
			})
		},
	}
}

func newVerifyCommand(a *app) *cobra.Command {
	var progress bool
	c := &cobra.Command{
		Use:   "verify",
		Short: "Verify the log's hash chain",
		Long: `verify asks the server to walk the whole log and check that every event's
hash covers its predecessor's hash and its own content: proof that the
history was not rewritten. Progress goes to standard error on a terminal.
The exit code is 1 when the chain is broken, with the first bad position.`,
		Example: `  logbook verify`,
		Args:    checkedArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			showProgress := progress || isTerminal(cmd.ErrOrStderr())
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				stream, err := c.events.Verify(ctx, connect.NewRequest(&logbookv1.VerifyRequest{}))
				if err != nil {
					return err
				}
				defer stream.Close()
				prog := newProgressLine(p.diag, showProgress)
				var final *logbookv1.VerifyResponse
				for stream.Receive() {
					m := stream.Msg()
					if m.GetDone() {
						final = m
						break
					}
					prog.set("verified %d of %d", m.GetPosition(), m.GetHead())
				}
				prog.clear()
				if err := stream.Err(); err != nil {
					return err
				}
				if final == nil {
					return errors.New("verify: the server ended without a result")
				}
				if !p.table() {
					p.message(final)
				}
				if !final.GetOk() {
					return &exitCodeError{code: exitError, err: fmt.Errorf("hash chain broken at position %d: %s", final.GetBadPosition(), final.GetError())}
				}
				if p.table() {
					p.f("ok: positions 1..%d chain up to the head\n", final.GetPosition())
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&progress, "progress", false, "print progress even when standard error is not a terminal")
	return c
}
