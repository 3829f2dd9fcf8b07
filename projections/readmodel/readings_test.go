package readmodel_test

import (
	"context"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func reading(sensor string, v float64, at time.Time) *logbookv1.AgentReading {
	return &logbookv1.AgentReading{Sensor: sensor, Value: v, Time: timestamppb.New(at)}
}

func TestReadings(t *testing.T) {
	onEachSink(t, func(t *testing.T, e *env) {
		// ship1 speed: 10 readings a minute apart from t0, values 0..9; each sent twice.
		for i := range 10 {
			r := reading("speed", float64(i), t0.Add(time.Duration(i)*time.Minute))
			e.append("readings-ship1", r, md("agent"))
			e.append("readings-ship1", r, md("agent")) // duplicate: stored once
		}
		// A late, older reading does not replace the latest.
		e.append("readings-ship1", reading("temp", 20, t0.Add(5*time.Minute)), md("agent"))
		e.append("readings-ship1", reading("temp", 19, t0.Add(4*time.Minute)), md("agent"))
		// Same key, other value: the first one wins.
		e.append("readings-ship1", reading("temp", 99, t0.Add(5*time.Minute)), md("agent"))
		e.append("readings-ship2", reading("speed", 50, t0.Add(30*time.Second)), md("agent"))
		e.append("readings-ship2", reading("speed", 70, t0.Add(20*time.Minute)), md("agent"))
		e.append("readings-ship2", reading("nan", math.NaN(), t0), md("agent")) // not stored
		r := e.run(readmodel.Readings())
		// Live: a newer reading in a later batch replaces the latest.
		e.append("readings-ship2", reading("temp", 5, t0.Add(time.Hour)), md("agent"))
		e.caughtUp(r, readmodel.ReadingsName)

		var n int64
		if err := e.sink.View(e.ctx, readmodel.ReadingsName, func(q projections.Querier) error {
			return q.QueryRow(e.ctx, "SELECT count(*) FROM "+q.Table("readings")).Scan(&n)
		}); err != nil {
			t.Fatal(err)
		}
		if n != 10+2+2+1 {
			t.Errorf("%d readings stored, want 15 (duplicates once)", n)
		}

		latest := must[[]readmodel.Reading](t)(readmodel.LatestReadings(e.ctx, e.sink, "ship1"))
		want := []readmodel.Reading{
			{Unit: "ship1", Sensor: "speed", Time: t0.Add(9 * time.Minute), Value: 9},
			{Unit: "ship1", Sensor: "temp", Time: t0.Add(5 * time.Minute), Value: 20},
		}
		if !reflect.DeepEqual(latest, want) {
			t.Errorf("latest ship1 = %+v\nwant %+v", latest, want)
		}
		fleet := must[[]readmodel.Reading](t)(readmodel.LatestReadings(e.ctx, e.sink, ""))
		if len(fleet) != 4 {
			t.Errorf("latest fleet-wide = %+v, want 4 (unit, sensor) rows", fleet)
		}
		per := must[[]readmodel.Reading](t)(readmodel.LatestPerSensor(e.ctx, e.sink))
		wantPer := []readmodel.Reading{
			{Unit: "ship2", Sensor: "speed", Time: t0.Add(20 * time.Minute), Value: 70},
			{Unit: "ship2", Sensor: "temp", Time: t0.Add(time.Hour), Value: 5},
		}
		if !reflect.DeepEqual(per, wantPer) {
			t.Errorf("latest per sensor = %+v\nwant %+v", per, wantPer)
		}

		// ship1 speed in 3-minute buckets over [t0, t0+10m): 0,1,2 | 3,4,5 | 6,7,8 | 9.
		b := must[[]readmodel.Bucket](t)(readmodel.ReadingBuckets(e.ctx, e.sink, readmodel.BucketQuery{
			Unit: "ship1", Sensor: "speed", From: t0, To: t0.Add(10 * time.Minute), Width: 3 * time.Minute}))
		wantB := []readmodel.Bucket{
			{Sensor: "speed", Start: t0, Min: 0, Max: 2, Avg: 1, Count: 3},
			{Sensor: "speed", Start: t0.Add(3 * time.Minute), Min: 3, Max: 5, Avg: 4, Count: 3},
			{Sensor: "speed", Start: t0.Add(6 * time.Minute), Min: 6, Max: 8, Avg: 7, Count: 3},
			{Sensor: "speed", Start: t0.Add(9 * time.Minute), Min: 9, Max: 9, Avg: 9, Count: 1},
		}
		if !reflect.DeepEqual(b, wantB) {
			t.Errorf("buckets = %+v\nwant %+v", b, wantB)
		}
		// Fleet-wide, every sensor, 10-minute buckets over [t0+1m, t0+30m):
		// speed 1..9 of ship1 (t0 is before From) and 70 of ship2 at +20m; temp 20, 19.
		b = must[[]readmodel.Bucket](t)(readmodel.ReadingBuckets(e.ctx, e.sink, readmodel.BucketQuery{
			From: t0.Add(time.Minute), To: t0.Add(30 * time.Minute), Width: 10 * time.Minute}))
		wantB = []readmodel.Bucket{
			{Sensor: "speed", Start: t0, Min: 1, Max: 9, Avg: 5, Count: 9},
			{Sensor: "speed", Start: t0.Add(20 * time.Minute), Min: 70, Max: 70, Avg: 70, Count: 1},
			{Sensor: "temp", Start: t0, Min: 19, Max: 20, Avg: 19.5, Count: 2},
		}
		if !reflect.DeepEqual(b, wantB) {
			t.Errorf("fleet buckets = %+v\nwant %+v", b, wantB)
		}
		for _, q := range []readmodel.BucketQuery{
			{From: t0, To: t0.Add(time.Hour)},
			{From: t0, To: t0.Add(-time.Hour), Width: time.Minute},
			{From: t0, To: t0.Add(time.Hour), Width: time.Millisecond},
			{From: t0, To: t0.Add(time.Hour), Width: 1500 * time.Microsecond},
			{To: t0, Width: time.Minute},
		} {
			if _, err := readmodel.ReadingBuckets(e.ctx, e.sink, q); !errors.Is(err, readmodel.ErrInvalidQuery) {
				t.Errorf("ReadingBuckets(%+v) = %v, want ErrInvalidQuery", q, err)
			}
		}
	})
}

// TestReplayIsIdempotent applies the whole log a second time through each
// handler (as a replay after a lost checkpoint would) and checks no query
// answer changes.
func TestReplayIsIdempotent(t *testing.T) {
	onEachSink(t, func(t *testing.T, e *env) {
		e.append("unit-a", &logbookv1.UnitRegistered{Name: "a", Labels: map[string]string{"k": "v"}}, md("x"))
		e.append("unit-a", &logbookv1.UnitCommandIssued{CommandId: "c", Method: "m"}, md("x"))
		e.append("unit-a", &logbookv1.UnitCommandSucceeded{CommandId: "c", Output: []byte("ok")}, md("x"))
		e.append("unit-a", &logbookv1.UnitLabelsRemoved{Keys: []string{"k"}}, md("x"))
		e.append("process-a.m.d", &logbookv1.ProcessStatusReported{Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING, RestartCount: 1}, md("x"))
		e.append("release-1", &logbookv1.ReleasePublished{Version: "1"}, md("x"))
		e.append("channel-c", &logbookv1.ChannelReleasePromoted{Channel: "c", Version: "1"}, md("x"))
		e.append("channel-c", &logbookv1.ChannelFeatureFlagSet{Channel: "c", Key: "f", Value: "1"}, md("x"))
		e.append("readings-a", reading("s", 1, t0), md("x"))
		e.append("readings-a", reading("s", 2, t0.Add(time.Second)), md("x"))
		all := readmodel.All()
		e.run(all...)

		snapshot := func() []any {
			ctx := e.ctx
			var out []any
			add := func(v any, err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, v)
			}
			add(readmodel.ListUnits(ctx, e.sink, readmodel.UnitQuery{IncludeDecommissioned: true}))
			add(readmodel.ListUnits(ctx, e.sink, readmodel.UnitQuery{Selector: "k"}))
			add(readmodel.ProcessesOfUnit(ctx, e.sink, "a"))
			add(readmodel.ListCommands(ctx, e.sink, readmodel.CommandQuery{}))
			add(readmodel.ListReleases(ctx, e.sink, readmodel.ReleaseQuery{IncludeYanked: true}))
			add(readmodel.ListChannels(ctx, e.sink))
			add(readmodel.PromotionHistory(ctx, e.sink, readmodel.HistoryQuery{}))
			add(readmodel.AuditTimeline(ctx, e.sink, readmodel.AuditQuery{}))
			add(readmodel.LatestReadings(ctx, e.sink, ""))
			add(readmodel.ReadingBuckets(ctx, e.sink, readmodel.BucketQuery{From: t0, To: t0.Add(time.Minute), Width: time.Minute}))
			return out
		}
		before := snapshot()
		for _, p := range all {
			var batch []events.Event
			for ev, err := range e.store.ReadAll(e.ctx, 1, p.Filter) {
				if err != nil {
					t.Fatal(err)
				}
				batch = append(batch, ev)
			}
			cp, err := e.sink.Checkpoint(e.ctx, p.Name, p.Version)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.sink.Apply(e.ctx, p.Name, p.Version, cp, cp, func(tx projections.Tx) error {
				return p.Handler.Handle(context.Background(), tx, batch)
			}); err != nil {
				t.Fatalf("replay %s: %v", p.Name, err)
			}
		}
		if after := snapshot(); !reflect.DeepEqual(before, after) {
			t.Errorf("replay changed the read models:\nbefore %+v\nafter  %+v", before, after)
		}
	})
}

// TestReadingsBulk feeds batches larger than one INSERT statement holds,
// each reading twice, and checks counts, latest values and bucket sums.
func TestReadingsBulk(t *testing.T) {
	onEachSink(t, func(t *testing.T, e *env) {
		const n = 3000
		sensors := []string{"a", "b", "c"}
		var evs []events.Event
		for i := range n {
			ev, err := events.NewEvent(reading(sensors[i%3], float64(i), t0.Add(time.Duration(i)*time.Second)), md("agent"))
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
		for _, chunk := range [][]events.Event{evs[:n/2], evs, evs[n/2:]} { // every reading twice
			copies := make([]events.Event, len(chunk))
			for i, ev := range chunk {
				ev.ID = events.NewID()
				copies[i] = ev
			}
			if _, err := e.store.Append(e.ctx, "readings-bulk", events.Any, copies...); err != nil {
				t.Fatal(err)
			}
		}
		e.run(readmodel.Readings())
		buckets := must[[]readmodel.Bucket](t)(readmodel.ReadingBuckets(e.ctx, e.sink, readmodel.BucketQuery{
			Unit: "bulk", From: t0, To: t0.Add(n * time.Second), Width: time.Hour}))
		var count int64
		var sum float64
		for _, b := range buckets {
			count += b.Count
			sum += b.Avg * float64(b.Count)
		}
		if count != n || math.Abs(sum-float64(n*(n-1)/2)) > 1e-6*sum {
			t.Errorf("buckets hold %d readings summing to %v, want %d summing to %d", count, sum, n, n*(n-1)/2)
		}
		latest := must[[]readmodel.Reading](t)(readmodel.LatestReadings(e.ctx, e.sink, "bulk"))
		for i, l := range latest {
			want := float64(n - 3 + i)
			if l.Value != want || !l.Time.Equal(t0.Add(time.Duration(want)*time.Second)) {
				t.Errorf("latest %s = %v at %v, want %v", l.Sensor, l.Value, l.Time, want)
			}
		}
	})
}

// TestReadingsBatch checks that the readings of ReadingsBatch events (as
// api/ingest writes them) are stored like AgentReadings: under their
// natural key, once, with the newest per (unit, sensor) in latest.
func TestReadingsBatch(t *testing.T) {
	onEachSink(t, func(t *testing.T, e *env) {
		ns := func(d time.Duration) int64 { return t0.Add(d).UnixNano() }
		batch := &logbookv1.ReadingsBatch{
			Sensors:       []string{"temp", "speed"},
			SensorIndex:   []uint32{0, 1, 0, 1, 0},
			Values:        []float64{20, 5, 21, math.Inf(1), 22},
			TimesUnixNano: []int64{ns(0), ns(0), ns(time.Minute), ns(time.Minute), ns(2 * time.Minute)},
		}
		e.append("readings-ship1", batch, md("ingest"))
		e.append("readings-ship1", batch, md("ingest")) // a second copy stores nothing new
		// The same reading as an AgentReading: the batch's came first and wins.
		e.append("readings-ship1", reading("temp", 99, t0), md("agent"))
		// An older reading in a later batch does not replace the latest.
		e.append("readings-ship1", &logbookv1.ReadingsBatch{
			Sensors: []string{"temp"}, SensorIndex: []uint32{0}, Values: []float64{19}, TimesUnixNano: []int64{ns(-time.Minute)},
		}, md("ingest"))
		e.append("readings-ship1", &logbookv1.ReadingsBatch{}, md("ingest")) // empty: nothing to store
		r := e.run(readmodel.Readings())
		e.caughtUp(r, readmodel.ReadingsName)

		var n int64
		if err := e.sink.View(e.ctx, readmodel.ReadingsName, func(q projections.Querier) error {
			return q.QueryRow(e.ctx, "SELECT count(*) FROM "+q.Table("readings")).Scan(&n)
		}); err != nil {
			t.Fatal(err)
		}
		if n != 5 {
			t.Errorf("%d readings stored, want 5 (4 finite of the batch once, plus the older one)", n)
		}
		latest := must[[]readmodel.Reading](t)(readmodel.LatestReadings(e.ctx, e.sink, "ship1"))
		want := []readmodel.Reading{
			{Unit: "ship1", Sensor: "speed", Time: t0, Value: 5},
			{Unit: "ship1", Sensor: "temp", Time: t0.Add(2 * time.Minute), Value: 22},
		}
		if !reflect.DeepEqual(latest, want) {
			t.Errorf("latest = %+v\nwant %+v", latest, want)
		}
		b := must[[]readmodel.Bucket](t)(readmodel.ReadingBuckets(e.ctx, e.sink, readmodel.BucketQuery{
			Unit: "ship1", Sensor: "temp", From: t0.Add(-time.Hour), To: t0.Add(time.Hour), Width: time.Hour}))
		wantB := []readmodel.Bucket{ // t0 is on the hour
			{Sensor: "temp", Start: t0.Add(-time.Hour), Min: 19, Max: 19, Avg: 19, Count: 1},
			{Sensor: "temp", Start: t0, Min: 20, Max: 22, Avg: 21, Count: 3},
		}
		if !reflect.DeepEqual(b, wantB) {
			t.Errorf("buckets = %+v\nwant %+v", b, wantB)
		}
	})
}

// TestReadingsBatchMalformed checks that a batch whose columns disagree
// stops the projection with ErrPoison rather than storing part of it.
func TestReadingsBatchMalformed(t *testing.T) {
	for name, b := range map[string]*logbookv1.ReadingsBatch{
		"short values": {Sensors: []string{"a"}, SensorIndex: []uint32{0, 0}, Values: []float64{1}, TimesUnixNano: []int64{1, 2}},
		"bad index":    {Sensors: []string{"a"}, SensorIndex: []uint32{1}, Values: []float64{1}, TimesUnixNano: []int64{1}},
	} {
		t.Run(name, func(t *testing.T) {
			onEachSink(t, func(t *testing.T, e *env) {
				e.append("readings-a", b, md("ingest"))
				r, err := projections.Start(e.ctx, e.store, e.sink, []projections.Projection{readmodel.Readings()},
					projections.WithLogger(quietLogger()), projections.WithBackoff(time.Millisecond, 5*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				err = r.WaitReady(e.ctx, readmodel.ReadingsName)
				if !errors.Is(err, projections.ErrStopped) || !errors.Is(err, projections.ErrPoison) {
					t.Fatalf("WaitReady = %v, want ErrStopped and ErrPoison", err)
				}
			})
		})
	}
}
