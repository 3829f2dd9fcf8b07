package readmodel_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "readmodel")
	defer os.RemoveAll(dir)
	store, _ := embedded.Open(ctx, filepath.Join(dir, "log"), embedded.InMemory())
	defer store.Close()
	sink, _ := projections.OpenSink(ctx, "sqlite://"+filepath.Join(dir, "read.db"))
	defer sink.Close()

	at := time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC)
	for i, v := range []float64{55.5, 60.2, 61.9} {
		ev, _ := events.NewEvent(&logbookv1.AgentReading{Sensor: "speed", Value: v, Time: ts(at.Add(time.Duration(i) * time.Minute))},
			events.Metadata{Principal: "agent"})
		store.Append(ctx, "readings-ship1", events.Any, ev)
	}
	ev, _ := events.NewEvent(&logbookv1.UnitRegistered{Name: "ship1", Labels: map[string]string{"site": "north"}}, events.Metadata{Principal: "alice"})
	store.Append(ctx, "unit-ship1", events.Any, ev)

	r, err := projections.Start(ctx, store, sink, readmodel.All(), projections.WithLogger(quietLogger()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	for _, p := range readmodel.All() {
		r.WaitReady(ctx, p.Name)
	}
	rd := readmodel.Guard(r, sink)

	units, _ := readmodel.ListUnits(ctx, rd, readmodel.UnitQuery{Selector: "site=north"})
	fmt.Println(units[0].Name, units[0].Labels)
	latest, _ := readmodel.LatestReadings(ctx, rd, "ship1")
	fmt.Println(latest[0].Sensor, latest[0].Value)
	buckets, _ := readmodel.ReadingBuckets(ctx, rd, readmodel.BucketQuery{
		Unit: "ship1", From: at, To: at.Add(time.Hour), Width: time.Hour})
	b := buckets[0]
	fmt.Printf("%s min %.1f max %.1f avg %.1f n %d\n", b.Start.Format(time.Kitchen), b.Min, b.Max, b.Avg, b.Count)
	// Output:
	// ship1 map[site:north]
	// speed 61.9
	// 6:00PM min 55.5 max 61.9 avg 59.2 n 3
}
