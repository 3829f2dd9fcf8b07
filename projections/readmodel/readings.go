package readmodel

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// ReadingsName and ReadingsVersion identify the readings read model.
const (
	ReadingsName    = "readings"
	ReadingsVersion = 1
)

// Reading is one sensor value of a unit.
type Reading struct {
	Unit   string
	Sensor string
	Time   time.Time
	Value  float64
}

// Readings returns the readings read model (cloud-lada's persistor): the
// readings of streams "readings-<unit>", from AgentReading events (one
// reading each, sent by agents) and ReadingsBatch events (a chunk each,
// written by api/ingest), stored under their natural key (unit, sensor,
// time) with ON CONFLICT DO NOTHING, so a reading sent twice is stored once
// (the first one wins), plus the newest reading of each (unit, sensor),
// replaced only by a newer one. An AgentReading without a time takes its
// event's time. NaN and infinite values are not stored. A ReadingsBatch
// whose columns disagree is poison.
func Readings() projections.Projection {
	return projections.Projection{
		Name:    ReadingsName,
		Version: ReadingsVersion,
		Filter: events.Filter{Categories: []string{ReadingsCategory},
			Types: typeNames(&logbookv1.AgentReading{}, &logbookv1.ReadingsBatch{})},
		Migrations: migrationsOf(ReadingsName),
		Handler:    projections.HandlerFunc(handleReadings),
	}
}

type sensorKey struct{ unit, sensor string }

func handleReadings(ctx context.Context, tx projections.Tx, batch []events.Event) error {
	rows := make([][]any, 0, len(batch))
	latest := map[sensorKey]int{} // -> index in rows of the newest
	var order []sensorKey
	add := func(unit, sensor string, timeNs int64, value float64) {
		if math.IsNaN(value) || math.IsInf(value, 0) {
			return // neither dialect's DOUBLE PRECISION orders them usefully; PostgreSQL stores, SQLite refuses NaN
		}
		k := sensorKey{unit, sensor}
		rows = append(rows, []any{unit, sensor, timeNs, value})
		i, ok := latest[k]
		switch {
		case !ok:
			order = append(order, k)
			latest[k] = len(rows) - 1
		case timeNs > rows[i][2].(int64): // on a tie the first wins, as in readings
			latest[k] = len(rows) - 1
		}
	}
	for _, ev := range batch {
		msg, err := decode(ev)
		if err != nil {
			return err
		}
		unit := streamID(ev.Stream)
		switch m := msg.(type) {
		case *logbookv1.AgentReading:
			add(unit, m.GetSensor(), at(m.GetTime(), ev), m.GetValue())
		case *logbookv1.ReadingsBatch:
			if err := checkReadingsBatch(m); err != nil {
				return projections.Poison(fmt.Errorf("%s at position %d: %w", ev.Type, ev.Position, err))
			}
			for i, v := range m.GetValues() {
				add(unit, m.Sensors[m.SensorIndex[i]], m.TimesUnixNano[i], v)
			}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if _, err := tx.Upsert(ctx, projections.Upsert{
		Table: "readings", Columns: []string{"unit", "sensor", "time_ns", "value"}, Key: []string{"unit", "sensor", "time_ns"},
		OnConflict: projections.DoNothing,
	}, rows); err != nil {
		return err
	}
	lrows := make([][]any, len(order))
	for i, k := range order {
		lrows[i] = rows[latest[k]]
	}
	_, err := tx.Upsert(ctx, projections.Upsert{
		Table: "latest", Columns: []string{"unit", "sensor", "time_ns", "value"}, Key: []string{"unit", "sensor"},
		OnConflict: projections.DoUpdate,
		Set: []string{
			"value = CASE WHEN excluded.time_ns > cur.time_ns THEN excluded.value ELSE cur.value END",
			"time_ns = CASE WHEN excluded.time_ns > cur.time_ns THEN excluded.time_ns ELSE cur.time_ns END",
		},
	}, lrows)
	return err
}

// checkReadingsBatch checks that b's columns agree.
func checkReadingsBatch(b *logbookv1.ReadingsBatch) error {
	n := len(b.GetValues())
	if len(b.GetSensorIndex()) != n || len(b.GetTimesUnixNano()) != n {
		return fmt.Errorf("columns disagree: %d sensor indexes, %d values, %d times",
			len(b.GetSensorIndex()), n, len(b.GetTimesUnixNano()))
	}
	for i, j := range b.GetSensorIndex() {
		if int(j) >= len(b.GetSensors()) {
			return fmt.Errorf("reading %d: sensor index %d out of range (%d sensors)", i, j, len(b.GetSensors()))
		}
	}
	return nil
}

func scanReading(r projections.Row) (Reading, error) {
	var rd Reading
	var t int64
	if err := r.Scan(&rd.Unit, &rd.Sensor, &t, &rd.Value); err != nil {
		return rd, err
	}
	rd.Time = time.Unix(0, t).UTC()
	return rd, nil
}

// LatestReadings returns the newest reading of each sensor of unit,
// ordered by sensor; with unit "" the newest of each (unit, sensor) of the
// fleet, ordered by unit and sensor.
func LatestReadings(ctx context.Context, rd Reader, unit string) ([]Reading, error) {
	var out []Reading
	err := view(ctx, rd, ReadingsName, func(q projections.Querier) error {
		var w where
		if unit != "" {
			w.add("unit = ?", unit)
		}
		var err error
		out, err = scanAll(ctx, q, "SELECT unit, sensor, time_ns, value FROM "+q.Table("latest")+w.String()+
			" ORDER BY unit, sensor", w.args, func(r projections.Rows) (Reading, error) { return scanReading(r) })
		return err
	})
	return out, err
}

// LatestPerSensor returns, for each sensor name, the newest reading of
// any unit of the fleet, ordered by sensor (on a tie, the unit first by
// name).
func LatestPerSensor(ctx context.Context, rd Reader) ([]Reading, error) {
	var out []Reading
	err := view(ctx, rd, ReadingsName, func(q projections.Querier) error {
		t := q.Table("latest")
		all, err := scanAll(ctx, q, "SELECT l.unit, l.sensor, l.time_ns, l.value FROM "+t+" l WHERE l.time_ns = "+
			"(SELECT max(m.time_ns) FROM "+t+" m WHERE m.sensor = l.sensor) ORDER BY l.sensor, l.unit", nil,
			func(r projections.Rows) (Reading, error) { return scanReading(r) })
		for _, r := range all {
			if len(out) == 0 || out[len(out)-1].Sensor != r.Sensor {
				out = append(out, r)
			}
		}
		return err
	})
	return out, err
}

// Bucket aggregates the readings of one sensor in [Start, Start+Width).
type Bucket struct {
	Sensor        string
	Start         time.Time
	Min, Max, Avg float64
	Count         int64
}

// MaxBuckets bounds the buckets one BucketQuery may span per sensor.
const MaxBuckets = 100_000

// BucketQuery asks for the readings between From and To in buckets of
// Width, aligned to multiples of Width since the Unix epoch.
type BucketQuery struct {
	// Unit, when set, selects one unit's readings; else the fleet's.
	Unit string
	// Sensor, when set, selects one sensor; else every sensor.
	Sensor string
	// From <= reading time < To.
	From, To time.Time
	// Width of a bucket: a whole number of milliseconds, at least one.
	Width time.Duration
}

func errInvalidRange(from, to time.Time) error {
	return fmt.Errorf("%w: time range %s..%s ends before it starts", ErrInvalidQuery, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
}

// ReadingBuckets returns min, max, average and count of the readings q
// selects per sensor and bucket, ordered by sensor and bucket start; empty
// buckets are left out. Malformed queries (no range, To before From, Width
// not a positive whole number of milliseconds, more than MaxBuckets
// buckets) give ErrInvalidQuery.
func ReadingBuckets(ctx context.Context, rd Reader, q BucketQuery) ([]Bucket, error) {
	switch {
	case q.From.IsZero() || q.To.IsZero():
		return nil, fmt.Errorf("%w: buckets need From and To", ErrInvalidQuery)
	case q.To.Before(q.From):
		return nil, errInvalidRange(q.From, q.To)
	case q.Width < time.Millisecond || q.Width%time.Millisecond != 0:
		return nil, fmt.Errorf("%w: bucket width %v: want a positive whole number of milliseconds", ErrInvalidQuery, q.Width)
	case q.To.Sub(q.From)/q.Width > MaxBuckets:
		return nil, fmt.Errorf("%w: %v in buckets of %v is more than %d buckets", ErrInvalidQuery, q.To.Sub(q.From), q.Width, MaxBuckets)
	}
	width := int64(q.Width)
	var out []Bucket
	err := view(ctx, rd, ReadingsName, func(qr projections.Querier) error {
		var w where
		if q.Unit != "" {
			w.add("unit = ?", q.Unit)
		}
		if q.Sensor != "" {
			w.add("sensor = ?", q.Sensor)
		}
		w.add("time_ns >= ?", q.From.UnixNano())
		w.add("time_ns < ?", q.To.UnixNano())
		// Integer division by the width in both dialects (BIGINT / BIGINT);
		// times are after the epoch, so it floors.
		query := "SELECT sensor, bucket, min(value), max(value), avg(value), count(*) FROM (SELECT sensor, time_ns / ? AS bucket, value FROM " +
			qr.Table("readings") + w.String() + ") b GROUP BY sensor, bucket ORDER BY sensor, bucket"
		var err error
		out, err = scanAll(ctx, qr, query, append([]any{width}, w.args...), func(r projections.Rows) (Bucket, error) {
			var b Bucket
			var idx int64
			if err := r.Scan(&b.Sensor, &idx, &b.Min, &b.Max, &b.Avg, &b.Count); err != nil {
				return b, err
			}
			b.Start = time.Unix(0, idx*width).UTC()
			return b, nil
		})
		return err
	})
	return out, err
}
