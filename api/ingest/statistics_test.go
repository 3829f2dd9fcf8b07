package ingest

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/projections"
)

// noReader is a read model that is never ready.
type noReader struct{}

func (noReader) View(context.Context, string, func(projections.Querier) error) error {
	return errors.New("no read model")
}

func TestStatisticsBeforeReady(t *testing.T) {
	e := newEnv(t) // its sink has never been caught up
	for _, path := range []string{PathLatest, PathBuckets + "?from=2026-11-22T10:00:00Z&to=2026-11-22T11:00:00Z"} {
		var body errorBody
		code, h := e.get(path, &body)
		if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(body.Error, "not ready") {
			t.Errorf("GET %s before ready = %d %q (Retry-After %q), want 503 saying not ready", path, code, body.Error, h.Get("Retry-After"))
		}
	}
}

func TestStatistics(t *testing.T) {
	e := newEnv(t)
	r := e.runReadModel()
	// ship1: s0, s1, s2 at seconds 0..59 with values 0..59; ship2: 100..109.
	if code, res := e.upload("ship1", testKey, strings.NewReader(ndjson(0, 60))); code != http.StatusOK {
		t.Fatalf("upload: %d %+v", code, res)
	}
	if code, res := e.upload("ship2", testKey, strings.NewReader(ndjson(100, 110))); code != http.StatusOK {
		t.Fatalf("upload: %d %+v", code, res)
	}
	e.caughtUp(r)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }

	var latest LatestJSON
	if code, _ := e.get(PathLatest+"?unit=ship1", &latest); code != http.StatusOK {
		t.Fatalf("latest: %d", code)
	}
	wantLatest := []ReadingJSON{
		{"ship1", "s0", at(57), 57}, {"ship1", "s1", at(58), 58}, {"ship1", "s2", at(59), 59},
	}
	if !reflect.DeepEqual(latest.Readings, wantLatest) {
		t.Errorf("latest ship1 = %+v\nwant %+v", latest.Readings, wantLatest)
	}
	if e.get(PathLatest, &latest); len(latest.Readings) != 6 {
		t.Errorf("latest fleet-wide = %+v, want 6 (unit, sensor) rows", latest.Readings)
	}
	e.get(PathLatest+"?by=sensor", &latest)
	wantPer := []ReadingJSON{{"ship2", "s0", at(108), 108}, {"ship2", "s1", at(109), 109}, {"ship2", "s2", at(107), 107}}
	if !reflect.DeepEqual(latest.Readings, wantPer) {
		t.Errorf("latest per sensor = %+v\nwant %+v", latest.Readings, wantPer)
	}

	var buckets BucketsJSON
	code, _ := e.get(PathBuckets+"?unit=ship1&sensor=s0&from=2026-11-22T10:00:00Z&to=2026-11-22T10:01:00Z&bucket=30s", &buckets)
	if code != http.StatusOK {
		t.Fatalf("buckets: %d", code)
	}
	// s0 is every third second: 0,3,...,27 in the first bucket, 30..57 in the second.
	wantB := []BucketJSON{
		{Sensor: "s0", Start: t0, Min: 0, Max: 27, Avg: 13.5, Count: 10},
		{Sensor: "s0", Start: at(30), Min: 30, Max: 57, Avg: 43.5, Count: 10},
	}
	if !reflect.DeepEqual(buckets.Rows, wantB) || buckets.Bucket != "30s" {
		t.Errorf("buckets = %+v (%s)\nwant %+v", buckets.Rows, buckets.Bucket, wantB)
	}

	for _, tc := range []struct{ query, msg string }{
		{"", "from is required"},
		{"?from=2026-11-22T10:00:00Z", "to is required"},
		{"?from=yesterday&to=2026-11-22T10:00:00Z", `from="yesterday": want an RFC 3339 time`},
		{"?from=2026-11-22T10:00:00Z&to=2026-11-22T09:00:00Z", "is before from"},
		{"?from=2026-11-22T10:00:00Z&to=2026-11-22T11:00:00Z&bucket=0", `bucket="0"`},
		{"?from=2026-11-22T10:00:00Z&to=2026-11-22T11:00:00Z&bucket=1500us", `bucket="1500us"`},
		{"?from=2000-01-01T00:00:00Z&to=2026-11-22T11:00:00Z&bucket=1ms", "more than 100000 buckets"},
		{"?from=2026-11-22T10:00:00Z&to=2026-11-22T11:00:00Z&unit=a.b", "unit:"},
		{"?from=2026-11-22T10:00:00Z&to=2026-11-22T11:00:00Z&sensr=x", `unknown parameters ["sensr"]`},
	} {
		var body errorBody
		if code, _ := e.get(PathBuckets+tc.query, &body); code != http.StatusBadRequest || !strings.Contains(body.Error, tc.msg) {
			t.Errorf("GET buckets%s = %d %q, want 400 with %q", tc.query, code, body.Error, tc.msg)
		}
	}
	for _, tc := range []struct{ query, msg string }{
		{"?by=unit&unit=ship*", "wildcard"},
		{"?by=sensor&unit=ship1", "by=sensor is fleet-wide"},
		{"?by=day", `by="day"`},
	} {
		var body errorBody
		if code, _ := e.get(PathLatest+tc.query, &body); code != http.StatusBadRequest || !strings.Contains(body.Error, tc.msg) {
			t.Errorf("GET latest%s = %d %q, want 400 with %q", tc.query, code, body.Error, tc.msg)
		}
	}

	req, _ := http.NewRequestWithContext(e.ctx, http.MethodGet, e.srv.URL+PathLatest, nil)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("latest without a key: %s, want 401", resp.Status)
	}
}
