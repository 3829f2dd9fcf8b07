package sinktest

import (
	"context"
	"fmt"
	"testing/fstest"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
)

// The counter projection is the suite's read model: per stream of category
// "counter", the number of events and the sum of their values (payload
// google.protobuf.Int64Value), plus one row per event keyed by position.
// A doubled batch shows in the per-stream counts (they add up), a lost one
// in the events table.

// CounterCategory is the stream category the counter projection selects.
const CounterCategory = "counter"

// CounterType is the payload type of counter events.
const CounterType = "google.protobuf.Int64Value"

// CounterOptions tune the counter projection for a test.
type CounterOptions struct {
	// Fail, when set, is called for each event inside the transaction; an
	// error fails the batch.
	Fail func(ev events.Event) error
	// Delay sleeps inside the transaction after the rows are written, per
	// batch (to widen the window a crash lands in).
	Delay time.Duration
}

// Counter returns the counter projection.
func Counter(name string, version int, o CounterOptions) projections.Projection {
	return projections.Projection{
		Name:    name,
		Version: version,
		Filter:  events.Filter{Categories: []string{CounterCategory}},
		Migrations: fstest.MapFS{
			"001_init.sql": {Data: []byte(`
CREATE TABLE {{table "streams"}} (stream TEXT PRIMARY KEY, n BIGINT NOT NULL, total BIGINT NOT NULL);
CREATE TABLE {{table "events"}} (position BIGINT PRIMARY KEY, stream TEXT NOT NULL, value BIGINT NOT NULL);`)},
		},
		Handler: projections.HandlerFunc(func(ctx context.Context, tx projections.Tx, batch []events.Event) error {
			type agg struct{ n, total int64 }
			per := map[string]*agg{}
			var order []string
			rows := make([][]any, 0, len(batch))
			for _, ev := range batch {
				if o.Fail != nil {
					if err := o.Fail(ev); err != nil {
						return err
					}
				}
				var v wrapperspb.Int64Value
				if err := proto.Unmarshal(ev.Data, &v); err != nil {
					return fmt.Errorf("decode %s at position %d: %w", ev.Type, ev.Position, err)
				}
				a := per[ev.Stream]
				if a == nil {
					a = &agg{}
					per[ev.Stream] = a
					order = append(order, ev.Stream)
				}
				a.n++
				a.total += v.Value
				rows = append(rows, []any{int64(ev.Position), ev.Stream, v.Value})
			}
			if _, err := tx.Upsert(ctx, projections.Upsert{
				Table: "events", Columns: []string{"position", "stream", "value"}, Key: []string{"position"},
				OnConflict: projections.DoNothing,
			}, rows); err != nil {
				return err
			}
			srows := make([][]any, 0, len(order))
			for _, s := range order {
				srows = append(srows, []any{s, per[s].n, per[s].total})
			}
			if _, err := tx.Upsert(ctx, projections.Upsert{
				Table: "streams", Columns: []string{"stream", "n", "total"}, Key: []string{"stream"},
				OnConflict: projections.DoUpdate, Set: []string{"n = cur.n + excluded.n", "total = cur.total + excluded.total"},
			}, srows); err != nil {
				return err
			}
			if o.Delay > 0 {
				time.Sleep(o.Delay)
			}
			return nil
		}),
	}
}

// CounterEvent returns a counter event carrying v.
func CounterEvent(v int64) events.Event {
	ev, err := events.NewEvent(wrapperspb.Int64(v), events.Metadata{Principal: "sinktest"})
	if err != nil {
		panic(err)
	}
	return ev
}

// Fold is what the counter projection must hold.
type Fold struct {
	Streams map[string][2]int64 // stream -> (n, total)
	Events  int64
	Sum     int64
}

// FoldLog folds the whole log the way the counter projection does.
func FoldLog(ctx context.Context, st events.Store) (Fold, error) {
	f := Fold{Streams: map[string][2]int64{}}
	for ev, err := range st.ReadAll(ctx, 1, events.Filter{Categories: []string{CounterCategory}}) {
		if err != nil {
			return f, err
		}
		var v wrapperspb.Int64Value
		if err := proto.Unmarshal(ev.Data, &v); err != nil {
			continue // poison events are not part of the fold
		}
		s := f.Streams[ev.Stream]
		f.Streams[ev.Stream] = [2]int64{s[0] + 1, s[1] + v.Value}
		f.Events++
		f.Sum += v.Value
	}
	return f, nil
}

// ReadFold reads the counter projection's current version through View.
func ReadFold(ctx context.Context, sink projections.Sink, name string) (f Fold, version int, err error) {
	err = sink.View(ctx, name, func(q projections.Querier) error {
		version, _ = projections.VersionOfTable(name, q.Table("streams"))
		f, err = readFold(ctx, q)
		return err
	})
	return f, version, err
}

func readFold(ctx context.Context, q projections.Querier) (Fold, error) {
	f := Fold{Streams: map[string][2]int64{}}
	rows, err := q.Query(ctx, "SELECT stream, n, total FROM "+q.Table("streams")+" WHERE n >= ?", 0)
	if err != nil {
		return f, err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var n, total int64
		if err := rows.Scan(&s, &n, &total); err != nil {
			return f, err
		}
		f.Streams[s] = [2]int64{n, total}
	}
	if err := rows.Err(); err != nil {
		return f, err
	}
	err = q.QueryRow(ctx, "SELECT count(*), CAST(COALESCE(sum(value), 0) AS BIGINT) FROM "+q.Table("events")).Scan(&f.Events, &f.Sum)
	return f, err
}

// Diff describes how got differs from want, or "".
func (want Fold) Diff(got Fold) string {
	if got.Events != want.Events || got.Sum != want.Sum {
		return fmt.Sprintf("events table: %d rows summing to %d, want %d summing to %d", got.Events, got.Sum, want.Events, want.Sum)
	}
	if len(got.Streams) != len(want.Streams) {
		return fmt.Sprintf("%d streams, want %d", len(got.Streams), len(want.Streams))
	}
	for s, w := range want.Streams {
		if g := got.Streams[s]; g != w {
			return fmt.Sprintf("stream %s: n=%d total=%d, want n=%d total=%d", s, g[0], g[1], w[0], w[1])
		}
	}
	return ""
}
