package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	"github.com/logbook-fleet/logbook/projections/sqlite"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// testKey is the API key testAuthorize accepts for everything; "reader"
// may only read.
const testKey = "secret"

func testAuthorize(r *http.Request) (string, error) {
	switch auth := r.Header.Get("Authorization"); auth {
	case "":
		return "", fmt.Errorf("%w: send Authorization: Bearer <key>", ErrUnauthenticated)
	case "Bearer " + testKey:
		return "tester", nil
	case "Bearer reader":
		if r.Method != http.MethodGet {
			return "", fmt.Errorf("%w: key reader may not upload readings", ErrForbidden)
		}
		return "reader", nil
	}
	return "", fmt.Errorf("%w: unknown key", ErrUnauthenticated)
}

// smallChunks makes chunks of 4 to 16 readings, 12 on average, so tests
// see many of them.
var smallChunks = chunkParams{min: 4, avgMask: 7, max: 16}

// env is one test's store, read model sink and service behind a real HTTP
// server.
type env struct {
	t     *testing.T
	ctx   context.Context
	store *embedded.Store
	sink  projections.Sink
	svc   *Service
	srv   *httptest.Server
}

func newEnv(t *testing.T, configure ...func(*Config)) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	st, err := embedded.Open(ctx, t.TempDir(), embedded.InMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sink, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "read.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	cfg := Config{Store: st, Readings: sink, Authorize: testAuthorize, Logger: quietLogger()}
	for _, c := range configure {
		c(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	svc.chunking = smallChunks
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, ctx: ctx, store: st, sink: sink, svc: svc, srv: srv}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// upload posts body for unit with key and decodes the answer.
func (e *env) upload(unit, key string, body io.Reader) (int, Result) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, e.srv.URL+PathIngest+"?unit="+unit, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var res Result
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		e.t.Fatalf("decode answer (%s): %v", resp.Status, err)
	}
	return resp.StatusCode, res
}

// get GETs path with the test key and decodes the JSON answer into v.
func (e *env) get(path string, v any) (int, http.Header) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		e.t.Fatalf("GET %s: decode answer (%s): %v", path, resp.Status, err)
	}
	return resp.StatusCode, resp.Header
}

// stored is one reading as found in the log.
type stored struct {
	Sensor string
	Value  float64
	Nanos  int64
}

// logged returns unit's readings ordered by time (the chunks of one
// upload may be appended in any order), and its events' sizes.
func (e *env) logged(unit string) ([]stored, []int) {
	e.t.Helper()
	var out []stored
	var sizes []int
	for ev, err := range e.store.ReadStream(e.ctx, Category+"-"+unit, 1) {
		if errors.Is(err, events.ErrStreamNotFound) {
			break
		}
		if err != nil {
			e.t.Fatal(err)
		}
		var b logbookv1.ReadingsBatch
		if ev.Type != batchType {
			e.t.Fatalf("event type %s, want %s", ev.Type, batchType)
		}
		if err := proto.Unmarshal(ev.Data, &b); err != nil {
			e.t.Fatal(err)
		}
		for i, v := range b.Values {
			out = append(out, stored{b.Sensors[b.SensorIndex[i]], v, b.TimesUnixNano[i]})
		}
		sizes = append(sizes, len(b.Values))
	}
	slices.SortStableFunc(out, func(a, b stored) int { return cmp.Compare(a.Nanos, b.Nanos) })
	return out, sizes
}

// runReadModel starts the readings projection on the env's sink.
func (e *env) runReadModel() *projections.Runner {
	e.t.Helper()
	r, err := projections.Start(e.ctx, e.store, e.sink, []projections.Projection{readmodel.Readings()},
		projections.WithLogger(quietLogger()), projections.WithPollInterval(5*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { r.Close() })
	if err := r.WaitReady(e.ctx, readmodel.ReadingsName); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// caughtUp waits until the read model has applied the log up to its head.
func (e *env) caughtUp(r *projections.Runner) {
	e.t.Helper()
	head, err := e.store.Head(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for {
		st, _ := r.Status(readmodel.ReadingsName)
		if st.Checkpoint >= head.Position {
			return
		}
		if st.State == projections.StateStopped || e.ctx.Err() != nil {
			e.t.Fatalf("read model at %d of %d (%s): %v", st.Checkpoint, head.Position, st.State, st.LastError)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// modelCount returns how many readings the read model stores.
func (e *env) modelCount() int64 {
	e.t.Helper()
	var n int64
	if err := e.sink.View(e.ctx, readmodel.ReadingsName, func(q projections.Querier) error {
		return q.QueryRow(e.ctx, "SELECT count(*) FROM "+q.Table("readings")).Scan(&n)
	}); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// t0 is the time of the first test reading.
var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// ndjson returns lines from..to-1 of a test backlog: sensor s<i%3>, value
// i, one reading a second from t0.
func ndjson(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, `{"sensor":"s%d","value":%d,"timestamp":"%s"}`+"\n", i%3, i, t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339))
	}
	return b.String()
}

// want returns the readings of ndjson(from, to).
func want(from, to int) []stored {
	var out []stored
	for i := from; i < to; i++ {
		out = append(out, stored{"s" + strconv.Itoa(i%3), float64(i), t0.Add(time.Duration(i) * time.Second).UnixNano()})
	}
	return out
}

// boundaries returns the chunk ends (counts of readings) the chunker cuts
// rs at with p.
func boundaries(p chunkParams, rs []stored) map[int]bool {
	c := newChunk(p)
	out := map[int]bool{0: true}
	for i, r := range rs {
		if c.add(reading{sensor: []byte(r.Sensor), value: r.Value, nanos: r.Nanos}, i+1) {
			out[i+1] = true
			c.reset()
		}
	}
	return out
}
