package dump_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/projections/dump"
)

func Example() {
	ctx := context.Background()
	store, err := embedded.Open(ctx, "example", embedded.InMemory())
	if err != nil {
		panic(err)
	}
	defer store.Close()

	// A reading of 2026-11-22 and an event of the next day, which completes it.
	for _, r := range []struct {
		stream string
		at     time.Time
	}{
		{"readings-ship1", time.Date(2026, 11, 22, 18, 25, 43, 511e6, time.UTC)},
		{"unit-ship1", time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)},
	} {
		payload, _ := structpb.NewStruct(map[string]any{"sensor": "speed", "value": 55.5})
		e, _ := events.NewEvent(payload, events.Metadata{Principal: "ingestor"})
		e.Time = r.at
		if _, err := store.Append(ctx, r.stream, events.Any, e); err != nil {
			panic(err)
		}
	}

	var registry events.Registry
	registry.Register(&structpb.Struct{})
	d, err := dump.Open(ctx, store, "mem://", // or "file:///var/lib/logbook/dumps"
		dump.WithRegistry(&registry),
		dump.WithLogger(slog.New(slog.DiscardHandler)),
		dump.WithClock(func() time.Time { return time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC) }))
	if err != nil {
		panic(err)
	}
	defer d.Close()

	results, err := d.RunDue(ctx)
	if err != nil {
		panic(err)
	}
	for _, r := range results {
		fmt.Println(r.Readings.Object, r.Readings.Count, "reading(s)")
		fmt.Println(r.Audit.Object, r.Audit.Count, "audit event(s)")
	}
	again, _ := d.Run(ctx, time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	fmt.Println("second run skipped:", again.Skipped)
	// Output:
	// readings/2026/11/22.ndjson.gz 1 reading(s)
	// audit/2026/11/22.ndjson.gz 0 audit event(s)
	// second run skipped: true
}
