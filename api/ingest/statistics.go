package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/readmodel"
)

// DefaultBucket is the bucket width of PathBuckets without a bucket
// parameter.
const DefaultBucket = time.Hour

// ReadingJSON is one reading in a statistics answer.
type ReadingJSON struct {
	Unit   string    `json:"unit"`
	Sensor string    `json:"sensor"`
	Time   time.Time `json:"time"`
	Value  float64   `json:"value"`
}

// LatestJSON is the body of PathLatest.
type LatestJSON struct {
	Readings []ReadingJSON `json:"readings"`
}

// BucketJSON is one bucket in a PathBuckets answer: the readings of Sensor
// in [Start, Start+bucket).
type BucketJSON struct {
	Sensor string    `json:"sensor"`
	Start  time.Time `json:"start"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Avg    float64   `json:"avg"`
	Count  int64     `json:"count"`
}

// BucketsJSON is the body of PathBuckets.
type BucketsJSON struct {
	Unit   string       `json:"unit,omitempty"`
	Sensor string       `json:"sensor,omitempty"`
	From   time.Time    `json:"from"`
	To     time.Time    `json:"to"`
	Bucket string       `json:"bucket"`
	Rows   []BucketJSON `json:"buckets"`
}

const (
	routeLatest  = "latest"
	routeBuckets = "buckets"
)

// LatestHandler returns the handler of GET PathLatest: the newest reading
// of each (unit, sensor); with ?unit=U only unit U's; with ?by=sensor the
// newest reading of each sensor across the fleet instead.
func (s *Service) LatestHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.authorize(w, r, routeLatest); !ok {
			return
		}
		q := r.URL.Query()
		if bad := unknownParams(q, "unit", "by"); bad != "" {
			s.replyError(w, routeLatest, http.StatusBadRequest, bad)
			return
		}
		name, by := q.Get("unit"), q.Get("by")
		if name != "" {
			if err := unit.ValidateName(name); err != nil {
				s.replyError(w, routeLatest, http.StatusBadRequest, "unit: "+err.Error())
				return
			}
		}
		var rs []readmodel.Reading
		var err error
		switch by {
		case "", "unit":
			rs, err = readmodel.LatestReadings(r.Context(), s.cfg.Readings, name)
		case "sensor":
			if name != "" {
				s.replyError(w, routeLatest, http.StatusBadRequest, "by=sensor is fleet-wide: leave out unit, or use by=unit")
				return
			}
			rs, err = readmodel.LatestPerSensor(r.Context(), s.cfg.Readings)
		default:
			s.replyError(w, routeLatest, http.StatusBadRequest, fmt.Sprintf("by=%q: want unit (the default) or sensor", by))
			return
		}
		if err != nil {
			s.replyReadError(w, r, routeLatest, err)
			return
		}
		out := LatestJSON{Readings: make([]ReadingJSON, len(rs))}
		for i, x := range rs {
			out.Readings[i] = ReadingJSON{Unit: x.Unit, Sensor: x.Sensor, Time: x.Time, Value: x.Value}
		}
		s.reply(w, routeLatest, http.StatusOK, out)
	})
}

// BucketsHandler returns the handler of GET PathBuckets: min, max, average
// and count of the readings between from and to (RFC 3339, required) in
// buckets of bucket (a Go duration such as 5m, whole milliseconds,
// default DefaultBucket) aligned to the Unix epoch, per sensor, for one
// unit (?unit=) or the fleet, for one sensor (?sensor=) or all. Empty
// buckets are left out.
func (s *Service) BucketsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.authorize(w, r, routeBuckets); !ok {
			return
		}
		q := r.URL.Query()
		bq, problems := parseBucketQuery(q)
		if len(problems) > 0 {
			s.replyError(w, routeBuckets, http.StatusBadRequest, errors.Join(problems...).Error())
			return
		}
		bs, err := readmodel.ReadingBuckets(r.Context(), s.cfg.Readings, bq)
		if err != nil {
			s.replyReadError(w, r, routeBuckets, err)
			return
		}
		out := BucketsJSON{Unit: bq.Unit, Sensor: bq.Sensor, From: bq.From, To: bq.To, Bucket: bq.Width.String(),
			Rows: make([]BucketJSON, len(bs))}
		for i, b := range bs {
			out.Rows[i] = BucketJSON{Sensor: b.Sensor, Start: b.Start, Min: b.Min, Max: b.Max, Avg: b.Avg, Count: b.Count}
		}
		s.reply(w, routeBuckets, http.StatusOK, out)
	})
}

// parseBucketQuery reads PathBuckets' parameters and lists every problem.
func parseBucketQuery(q url.Values) (readmodel.BucketQuery, []error) {
	var bq readmodel.BucketQuery
	var problems []error
	if bad := unknownParams(q, "unit", "sensor", "from", "to", "bucket"); bad != "" {
		problems = append(problems, errors.New(bad))
	}
	if bq.Unit = q.Get("unit"); bq.Unit != "" {
		if err := unit.ValidateName(bq.Unit); err != nil {
			problems = append(problems, fmt.Errorf("unit: %w", err))
		}
	}
	bq.Sensor = q.Get("sensor")
	if err := validateSensor(bq.Sensor); bq.Sensor != "" && err != nil {
		problems = append(problems, err)
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &bq.From}, {"to", &bq.To}} {
		v := q.Get(p.name)
		if v == "" {
			problems = append(problems, fmt.Errorf("%s is required: an RFC 3339 time like 2026-11-22T10:00:00Z", p.name))
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s=%q: want an RFC 3339 time like 2026-11-22T10:00:00Z", p.name, v))
			continue
		}
		*p.dst = t.UTC()
	}
	bq.Width = DefaultBucket
	if v := q.Get("bucket"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Millisecond || d%time.Millisecond != 0 {
			problems = append(problems, fmt.Errorf("bucket=%q: want a duration of whole milliseconds, at least 1ms, like 1m, 15m or 1h", v))
		} else {
			bq.Width = d
		}
	}
	if len(problems) == 0 {
		switch {
		case bq.To.Before(bq.From):
			problems = append(problems, fmt.Errorf("to (%s) is before from (%s)", bq.To.Format(time.RFC3339Nano), bq.From.Format(time.RFC3339Nano)))
		case bq.To.Sub(bq.From)/bq.Width > readmodel.MaxBuckets:
			problems = append(problems, fmt.Errorf("%v in buckets of %v is more than %d buckets: use a wider bucket or a shorter range",
				bq.To.Sub(bq.From), bq.Width, readmodel.MaxBuckets))
		}
	}
	return bq, problems
}

// unknownParams names the parameters of q not in known, or returns "".
func unknownParams(q url.Values, known ...string) string {
	var bad []string
	for k := range q {
		ok := false
		for _, n := range known {
			ok = ok || k == n
		}
		if !ok {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	slices.Sort(bad)
	return fmt.Sprintf("unknown parameters %q: known are %q", bad, known)
}

// replyReadError answers a failed read model query.
func (s *Service) replyReadError(w http.ResponseWriter, r *http.Request, route string, err error) {
	switch {
	case errors.Is(err, projections.ErrNotReady):
		w.Header().Set("Retry-After", "5")
		s.replyError(w, route, http.StatusServiceUnavailable,
			"the readings read model is not ready yet (catching up with the log); retry shortly: "+err.Error())
	case errors.Is(err, readmodel.ErrInvalidQuery):
		s.replyError(w, route, http.StatusBadRequest, err.Error())
	case r.Context().Err() != nil && errors.Is(err, context.Canceled):
		s.metrics.requests.WithLabelValues(route, "canceled").Inc() // the client left; nobody reads an answer
	default:
		s.log.Error("ingest: read model query failed", "route", route, "url", r.URL.String(), "err", err)
		s.replyError(w, route, http.StatusInternalServerError, "reading the readings read model failed; see the server log")
	}
}
