package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
)

// Demo walks through the embedded event log in dir (a temporary directory,
// removed afterwards, when dir is empty) and describes each step on out. The
// store's warnings (such as a torn tail truncated on open) go to diag.
func Demo(ctx context.Context, out, diag io.Writer, dir string) (err error) {
	p := &printer{w: out}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "logbook-demo-")
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
		p.f("Logbook demo: embedded event store in %s (temporary, removed at the end)\n", dir)
	} else {
		p.f("Logbook demo: embedded event store in %s\n", dir)
	}

	store, err := embedded.Open(ctx, dir, embedded.WithLogger(slog.New(slog.NewTextHandler(diag, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		return fmt.Errorf("demo: open store: %w", err)
	}
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("demo: close store: %w", cerr)
		}
	}()
	if err := runDemo(ctx, p, store); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return p.err
}

func runDemo(ctx context.Context, p *printer, store events.Store) error {
	md := events.Metadata{CorrelationID: events.NewID().String(), Principal: "operator:demo"}
	newEvent := func(kind string, fields map[string]any) events.Event {
		f := map[string]any{"kind": kind}
		for k, v := range fields {
			f[k] = v
		}
		msg, err := structpb.NewStruct(f)
		if err != nil {
			panic(err) // the demo's own literals are always valid
		}
		ev, err := events.NewEvent(msg, md)
		if err != nil {
			panic(err)
		}
		return ev
	}

	p.section("1. Append (each call is atomic and durable before it returns)")
	steps := []struct {
		stream string
		evs    []events.Event
	}{
		{"unit-ship1", []events.Event{
			newEvent("UnitRegistered", map[string]any{"unit": "ship1", "platform": "linux/arm64"}),
			newEvent("UnitLabelled", map[string]any{"region": "north-sea", "fleet": "tankers"}),
		}},
		{"unit-ship2", []events.Event{
			newEvent("UnitRegistered", map[string]any{"unit": "ship2", "platform": "linux/amd64"}),
		}},
		{"channel-stable", []events.Event{
			newEvent("ReleasePromoted", map[string]any{"release": "2026.11.3"}),
		}},
	}
	var lastAppend struct {
		stream string
		evs    []events.Event
		res    events.AppendResult
	}
	for _, s := range steps {
		res, err := store.Append(ctx, s.stream, events.Any, s.evs...)
		if err != nil {
			return fmt.Errorf("append to %s: %w", s.stream, err)
		}
		p.f("  %-15s %d event(s)  %-13s %s\n", s.stream, len(s.evs),
			span("version", res.FirstVersion, res.LastVersion), span("position", res.FirstPosition, res.LastPosition))
		lastAppend.stream, lastAppend.evs, lastAppend.res = s.stream, s.evs, res
	}

	p.section("2. Optimistic concurrency (expected versions)")
	ship1, err := streamVersion(ctx, store, "unit-ship1")
	if err != nil {
		return err
	}
	join := newEvent("UnitJoinedChannel", map[string]any{"channel": "stable"})
	res, err := store.Append(ctx, "unit-ship1", events.Exactly(ship1), join)
	if err != nil {
		return fmt.Errorf("append to unit-ship1 at version %d: %w", ship1, err)
	}
	p.f("  unit-ship1 expecting version %d: ok, now at version %d (position %d)\n", ship1, res.LastVersion, res.LastPosition)

	stale := newEvent("UnitPinned", map[string]any{"release": "2026.10.1"})
	_, err = store.Append(ctx, "unit-ship1", events.Exactly(ship1), stale)
	var wrong *events.WrongExpectedVersionError
	if !errors.As(err, &wrong) {
		return fmt.Errorf("append to unit-ship1 with a stale version %d: want a wrong-expected-version error, got %v", ship1, err)
	}
	p.f("  unit-ship1 expecting version %d again: rejected, nothing appended\n", ship1)
	p.f("    error:          %v\n", err)
	p.f("    actual version: %d (reload, decide again, retry)\n", wrong.Actual)

	p.section("3. Idempotent retry (same event ids, same place)")
	again, err := store.Append(ctx, lastAppend.stream, events.Any, lastAppend.evs...)
	if err != nil {
		return fmt.Errorf("retry append to %s: %w", lastAppend.stream, err)
	}
	if again != lastAppend.res {
		return fmt.Errorf("retry append to %s: got %+v, want the original result %+v", lastAppend.stream, again, lastAppend.res)
	}
	p.f("  %s: re-sent event %s, got the original result (position %d), no second copy\n",
		lastAppend.stream, lastAppend.evs[0].ID, again.LastPosition)

	var reg events.Registry
	reg.Register(&structpb.Struct{})

	p.section("4. Replay unit-ship1 from version 1")
	for ev, err := range store.ReadStream(ctx, "unit-ship1", 1) {
		if err != nil {
			return fmt.Errorf("read unit-ship1: %w", err)
		}
		desc, err := describe(&reg, ev)
		if err != nil {
			return err
		}
		p.f("  v%-3d pos %-4d %s\n", ev.Version, ev.Position, desc)
	}

	p.section(`5. Read all, category "unit" only`)
	n := 0
	for ev, err := range store.ReadAll(ctx, 1, events.Filter{Categories: []string{"unit"}}) {
		if err != nil {
			return fmt.Errorf("read all: %w", err)
		}
		desc, err := describe(&reg, ev)
		if err != nil {
			return err
		}
		p.f("  pos %-4d %-15s v%-3d %s\n", ev.Position, ev.Stream, ev.Version, desc)
		n++
	}
	p.f("  %d unit event(s); channel-stable is filtered out\n", n)

	p.section("6. Head and hash chain")
	head, err := store.Head(ctx)
	if err != nil {
		return fmt.Errorf("head: %w", err)
	}
	p.f("  head position %d\n  head hash     %s\n", head.Position, head.Hash)
	verified, err := store.Verify(ctx)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if verified != head {
		return fmt.Errorf("verify: verified head %d/%s differs from head %d/%s", verified.Position, verified.Hash, head.Position, head.Hash)
	}
	p.f("  verify: ok, positions 1..%d chain up to the head hash\n", verified.Position)
	p.f("\n(position, hash) = (%d, %s) names this state of the log.\n", head.Position, head.Hash)
	return nil
}

// streamVersion returns the current version of stream (0: no events).
func streamVersion(ctx context.Context, store events.Store, stream string) (uint64, error) {
	var v uint64
	for ev, err := range store.ReadStream(ctx, stream, 1) {
		if errors.Is(err, events.ErrStreamNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", stream, err)
		}
		v = ev.Version
	}
	return v, nil
}

// describe renders a demo payload as "Kind key=value ...".
func describe(reg *events.Registry, ev events.Event) (string, error) {
	msg, err := reg.Decode(ev)
	if err != nil {
		return "", err
	}
	fields := msg.(*structpb.Struct).AsMap()
	kind, _ := fields["kind"].(string)
	var kv []string
	for k, v := range fields {
		if k != "kind" {
			kv = append(kv, fmt.Sprintf("%s=%v", k, v))
		}
	}
	slices.Sort(kv)
	return strings.TrimSpace(fmt.Sprintf("%-18s %s", kind, strings.Join(kv, " "))), nil
}

// span renders "version 3" or "versions 3-5".
func span(noun string, first, last uint64) string {
	if first == last {
		return fmt.Sprintf("%s %d", noun, first)
	}
	return fmt.Sprintf("%ss %d-%d", noun, first, last)
}

// printer writes human output and keeps the first write error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) section(title string) { p.f("\n%s\n", title) }
