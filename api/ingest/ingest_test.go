package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func TestUpload(t *testing.T) {
	e := newEnv(t)
	code, res := e.upload("ship1", testKey, strings.NewReader(ndjson(0, 100)))
	if code != http.StatusOK || res.Accepted != 100 || res.Duplicates != 0 || res.Invalid != 0 || res.Lines != 100 {
		t.Fatalf("upload = %d %+v, want 200 with 100 accepted", code, res)
	}
	got, sizes := e.logged("ship1")
	if !reflect.DeepEqual(got, want(0, 100)) {
		t.Errorf("log holds %v\nwant %v", got, want(0, 100))
	}
	short := 0 // the last chunk of the upload may be short
	for i, n := range sizes {
		if n < smallChunks.min {
			short++
		}
		if n > smallChunks.max || short > 1 {
			t.Errorf("chunk %d has %d readings, want %d to %d (all but one)", i, n, smallChunks.min, smallChunks.max)
		}
	}
	for ev, err := range e.store.ReadStream(e.ctx, "readings-ship1", 1) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Metadata.Principal != "tester" {
			t.Errorf("event principal %q, want tester", ev.Metadata.Principal)
		}
		break
	}
}

func TestUploadGzipAndHeaderUnit(t *testing.T) {
	e := newEnv(t)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	io.WriteString(zw, ndjson(0, 30))
	zw.Close()
	req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, e.srv.URL+PathIngest, &z)
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set(UnitHeader, "ship2")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("gzip upload: %s", resp.Status)
	}
	if got, _ := e.logged("ship2"); !reflect.DeepEqual(got, want(0, 30)) {
		t.Errorf("log holds %v, want %v", got, want(0, 30))
	}
}

func TestUploadInvalidLines(t *testing.T) {
	e := newEnv(t)
	valid := strings.Split(strings.TrimSpace(ndjson(0, 6)), "\n")
	body := strings.Join([]string{
		valid[0],
		`{"sensor":"temp","value":"hot","timestamp":"2026-11-22T10:00:00Z"}`, // 2
		valid[1],
		``,                           // 4: blank, skipped
		`   `,                        // 5: blank
		`{"sensor":"temp","value":1`, // 6
		valid[2],
		`{"value":1,"timestamp":1}`, // 8
		valid[3],
		`{"sensor":"temp","value":1,"timestamp":"22/11/2026"}`, // 10
		valid[4],
		valid[5], // 12, no trailing newline
	}, "\n")
	code, res := e.upload("ship1", testKey, strings.NewReader(body))
	if code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", code)
	}
	if res.Accepted != 6 || res.Invalid != 4 || res.Lines != 12 {
		t.Errorf("counts %+v, want 6 accepted, 4 invalid, 12 lines", res)
	}
	wantErrs := []struct {
		line int
		msg  string
	}{{2, `"value" must be a number, got a string`}, {6, "not valid JSON"}, {8, `missing "sensor"`}, {10, "is not RFC 3339"}}
	if len(res.Errors) != len(wantErrs) {
		t.Fatalf("errors %+v, want %d", res.Errors, len(wantErrs))
	}
	for i, w := range wantErrs {
		if res.Errors[i].Line != w.line || !strings.Contains(res.Errors[i].Error, w.msg) {
			t.Errorf("error %d = %+v, want line %d: %q", i, res.Errors[i], w.line, w.msg)
		}
	}
	if got, _ := e.logged("ship1"); !reflect.DeepEqual(got, want(0, 6)) {
		t.Errorf("log holds %v, want the 6 valid readings", got)
	}
}

func TestUploadReportsBoundedErrors(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxReportedErrors = 3 })
	code, res := e.upload("ship1", testKey, strings.NewReader(strings.Repeat("nope\n", 10)+ndjson(0, 2)))
	if code != http.StatusBadRequest || res.Invalid != 10 || len(res.Errors) != 3 || !res.ErrorsTruncated || res.Accepted != 2 {
		t.Errorf("upload = %d %+v, want 400, 10 invalid, 3 listed, truncated, 2 accepted", code, res)
	}
}

func TestUploadHugeLine(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxLineBytes = 1024 })
	huge := `{"sensor":"temp","value":1,"timestamp":1,"junk":"` + strings.Repeat("x", 100_000) + `"}`
	body := ndjson(0, 5) + huge + "\n" + ndjson(5, 10) + huge // the last one without a newline
	code, res := e.upload("ship1", testKey, strings.NewReader(body))
	if code != http.StatusBadRequest || res.Invalid != 2 || res.Accepted != 10 || res.Lines != 12 {
		t.Fatalf("upload = %d %+v, want 400 with 2 invalid, 10 accepted, 12 lines", code, res)
	}
	for i, line := range []int{6, 12} {
		if res.Errors[i].Line != line || !strings.Contains(res.Errors[i].Error, "longer than 1024 bytes") {
			t.Errorf("error %d = %+v, want line %d longer than 1024 bytes", i, res.Errors[i], line)
		}
	}
	if got, _ := e.logged("ship1"); !reflect.DeepEqual(got, want(0, 10)) {
		t.Errorf("log holds %v, want the 10 valid readings", got)
	}
}

func TestUploadAuthAndUnit(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, unit, key string
		code            int
		msg             string
	}{
		{"no key", "ship1", "", http.StatusUnauthorized, "send Authorization"},
		{"wrong key", "ship1", "guess", http.StatusUnauthorized, "unknown key"},
		{"read-only key", "ship1", "reader", http.StatusForbidden, "may not upload"},
		{"no unit", "", testKey, http.StatusBadRequest, "name the unit"},
		{"dotted unit", "ship.1", testKey, http.StatusBadRequest, "contains '.'"},
		{"wildcard unit", "ship*", testKey, http.StatusBadRequest, "wildcard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, e.srv.URL+PathIngest+"?unit="+tc.unit, strings.NewReader(ndjson(0, 3)))
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.msg) {
				t.Errorf("%s: %s, want %d with %q", resp.Status, b, tc.code, tc.msg)
			}
			if tc.code == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if head, _ := e.store.Head(e.ctx); head.Position != 0 {
		t.Errorf("refused uploads stored %d events", head.Position)
	}
}

// TestRetriedUploadStoresNothingTwice uploads a backlog, the same backlog
// again, then a retry that resumes in the middle and goes further.
func TestRetriedUploadStoresNothingTwice(t *testing.T) {
	e := newEnv(t)
	r := e.runReadModel()

	code, res := e.upload("ship1", testKey, strings.NewReader(ndjson(0, 200)))
	if code != http.StatusOK || res.Accepted != 200 || res.Duplicates != 0 {
		t.Fatalf("first upload = %d %+v", code, res)
	}
	head1, _ := e.store.Head(e.ctx)

	code, res = e.upload("ship1", testKey, strings.NewReader(ndjson(0, 200)))
	if code != http.StatusOK || res.Accepted != 200 || res.Duplicates != 200 {
		t.Fatalf("identical retry = %d %+v, want 200 accepted, all duplicates", code, res)
	}
	if head2, _ := e.store.Head(e.ctx); head2 != head1 {
		t.Errorf("identical retry moved the head from %d to %d", head1.Position, head2.Position)
	}
	if got, _ := e.logged("ship1"); !reflect.DeepEqual(got, want(0, 200)) {
		t.Errorf("after an identical retry the log holds %d readings, want the 200 once", len(got))
	}

	// A retry resuming at line 101 and going on to 250: it realigns with
	// the first upload's chunks within one chunk.
	code, res = e.upload("ship1", testKey, strings.NewReader(ndjson(100, 250)))
	if code != http.StatusOK || res.Accepted != 150 || res.Duplicates < int64(100-2*smallChunks.max) {
		t.Fatalf("resumed retry = %d %+v, want 150 accepted, most of the first 100 duplicates", code, res)
	}
	got, _ := e.logged("ship1")
	if len(got) > 250+smallChunks.max {
		t.Errorf("log holds %d readings after a resumed retry, want at most %d (250 and one chunk again)", len(got), 250+smallChunks.max)
	}
	e.caughtUp(r)
	if n := e.modelCount(); n != 250 {
		t.Errorf("read model stores %d readings, want 250", n)
	}
}

// TestInterruptedUpload ends a body with a read error, as a client that
// goes away does: whole chunks before it are stored, the chunk being
// filled is not, and a retry stores every reading exactly once.
func TestInterruptedUpload(t *testing.T) {
	e := newEnv(t)
	const sent = 57
	body := io.MultiReader(strings.NewReader(ndjson(0, sent)+`{"sensor":"s0","val`), iotestErrReader{})
	req := httptest.NewRequestWithContext(e.ctx, http.MethodPost, PathIngest+"?unit=ship1", body)
	req.Header.Set("Authorization", "Bearer "+testKey)
	rec := httptest.NewRecorder()
	e.svc.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "client went away") {
		t.Errorf("interrupted upload answered %d %s", rec.Code, rec.Body)
	}
	got, _ := e.logged("ship1")
	bounds := boundaries(smallChunks, want(0, sent))
	if !bounds[len(got)] || len(got) == sent || !reflect.DeepEqual(got, want(0, len(got))) {
		t.Fatalf("log holds %d readings, want a prefix of the %d sent that ends at a chunk boundary (%v) and leaves out the last", len(got), sent, bounds)
	}

	code, res := e.upload("ship1", testKey, strings.NewReader(ndjson(0, 100)))
	if code != http.StatusOK || res.Duplicates != int64(len(got)) {
		t.Errorf("retry = %d %+v, want %d duplicates", code, res, len(got))
	}
	if got, _ := e.logged("ship1"); !reflect.DeepEqual(got, want(0, 100)) {
		t.Errorf("after the retry the log holds %d readings, want each of the 100 once", len(got))
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("client went away") }

// TestClientDisconnect aborts a real streaming upload mid-way.
func TestClientDisconnect(t *testing.T) {
	e := newEnv(t)
	handled := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(handled)
		e.svc.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()

	pr, pw := io.Pipe()
	req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, srv.URL+PathIngest+"?unit=ship1", pr)
	req.Header.Set("Authorization", "Bearer "+testKey)
	clientDone := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		clientDone <- err
	}()
	if _, err := io.WriteString(pw, ndjson(0, 40)); err != nil {
		t.Fatal(err)
	}
	// Wait until the handler stored a chunk: the upload is under way.
	for {
		if head, _ := e.store.Head(e.ctx); head.Position > 0 {
			break
		}
		if e.ctx.Err() != nil {
			t.Fatal("no chunk stored")
		}
		time.Sleep(time.Millisecond)
	}
	io.WriteString(pw, ndjson(40, 43))
	pw.CloseWithError(errors.New("client gone"))
	<-clientDone
	<-handled

	got, _ := e.logged("ship1")
	bounds := boundaries(smallChunks, want(0, 43))
	if len(got) == 0 || !bounds[len(got)] || !reflect.DeepEqual(got, want(0, len(got))) {
		t.Fatalf("log holds %d readings, want a prefix of those sent that ends at a chunk boundary (%v)", len(got), bounds)
	}
}

// TestLargeBodyIsStreamed uploads 200 MB through a pipe into a store that
// only counts, and checks at every write that the handler never holds
// more than a bounded number of lines that are not yet appended: it
// streams, it does not buffer the body.
func TestLargeBodyIsStreamed(t *testing.T) {
	size := 200 << 20
	if testing.Short() {
		size = 20 << 20
	}
	st := &countingStore{}
	svc, err := New(Config{Store: st, Readings: noReader{}, Authorize: testAuthorize, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	req := httptest.NewRequest(http.MethodPost, PathIngest+"?unit=ship1", pr)
	req.Header.Set("Authorization", "Bearer "+testKey)

	// At most: a buffer of lines, the chunk being filled, the chunks
	// waiting for the semaphore and in flight.
	const minLine = 60
	bound := int64((svc.cfg.MaxLineBytes+1)/minLine + (svc.cfg.AppendsInFlight+2)*chunkMax)
	var written, worst int64
	genErr := make(chan error, 1)
	go func() {
		defer pw.Close()
		buf := make([]byte, 0, 64<<10)
		for total := 0; total < size; {
			buf = buf[:0]
			for len(buf) < 60<<10 {
				buf = fmt.Appendf(buf, `{"sensor":"s%d","value":%d.25,"timestamp":%d}`+"\n", written%7, written, 1795341600000+written)
				written++
			}
			if held := written - st.readings.Load(); held > worst {
				worst = held
			}
			if _, err := pw.Write(buf); err != nil {
				genErr <- err
				return
			}
			total += len(buf)
		}
		genErr <- nil
	}()
	rec := httptest.NewRecorder()
	svc.Handler().ServeHTTP(rec, req)
	if err := <-genErr; err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusOK {
		t.Fatalf("upload answered %d %s", rec.Code, rec.Body)
	}
	if got := st.readings.Load(); got != written {
		t.Errorf("store got %d readings, want %d", got, written)
	}
	if worst > bound {
		t.Errorf("the handler held up to %d lines not yet appended, want at most %d: it buffers the body", worst, bound)
	}
	t.Logf("%d MB, %d lines, at most %d held (bound %d)", size>>20, written, worst, bound)
}

// countingStore counts the readings of the ReadingsBatch events appended
// to it and keeps nothing.
type countingStore struct {
	events.Store // only Append and Head are implemented
	readings     atomic.Int64
	mu           sync.Mutex
	pos          uint64
}

func (c *countingStore) Append(_ context.Context, _ string, _ events.Expect, evs ...events.Event) (events.AppendResult, error) {
	var n int
	for _, ev := range evs {
		var b logbookv1.ReadingsBatch
		if err := proto.Unmarshal(ev.Data, &b); err != nil {
			return events.AppendResult{}, err
		}
		n += len(b.Values)
	}
	c.readings.Add(int64(n))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pos += uint64(len(evs))
	return events.AppendResult{FirstPosition: c.pos - uint64(len(evs)) + 1, LastPosition: c.pos}, nil
}

func (c *countingStore) Head(context.Context) (events.Head, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return events.Head{Position: c.pos}, nil
}

func TestStoreFailure(t *testing.T) {
	e := newEnv(t)
	e.store.Close()
	code, res := e.upload("ship1", testKey, strings.NewReader(ndjson(0, 50)))
	if code != http.StatusServiceUnavailable || res.Accepted != 0 || !strings.Contains(res.Error, "storing readings failed") {
		t.Errorf("upload to a closed store = %d %+v, want 503 saying storing failed", code, res)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.upload("ship1", testKey, strings.NewReader(ndjson(0, 20)))
	e.upload("ship1", testKey, strings.NewReader(ndjson(0, 20)+"bad\n"))
	e.upload("ship1", "", strings.NewReader(ndjson(0, 20)))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e.svc)
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP logbook_ingest_lines_invalid_total Upload lines rejected as invalid (malformed, too long, out of range).
# TYPE logbook_ingest_lines_invalid_total counter
logbook_ingest_lines_invalid_total 1
# HELP logbook_ingest_readings_accepted_total Readings of uploads that are in the log (stored, or found there already).
# TYPE logbook_ingest_readings_accepted_total counter
logbook_ingest_readings_accepted_total 40
# HELP logbook_ingest_readings_duplicate_total Accepted readings an earlier upload of the same chunk had already stored.
# TYPE logbook_ingest_readings_duplicate_total counter
logbook_ingest_readings_duplicate_total 20
# HELP logbook_ingest_requests_total Requests answered, by route (ingest, latest, buckets) and HTTP status code.
# TYPE logbook_ingest_requests_total counter
logbook_ingest_requests_total{code="200",route="ingest"} 1
logbook_ingest_requests_total{code="400",route="ingest"} 1
logbook_ingest_requests_total{code="401",route="ingest"} 1
`), "logbook_ingest_lines_invalid_total", "logbook_ingest_readings_accepted_total",
		"logbook_ingest_readings_duplicate_total", "logbook_ingest_requests_total")
	if err != nil {
		t.Error(err)
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{MaxLineBytes: 1, MaxReportedErrors: -1, AppendsInFlight: 100}.Validate()
	for _, want := range []string{"Store is required", "Readings is required", "Authorize is required", "MaxLineBytes 1", "MaxReportedErrors -1", "AppendsInFlight 100"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

// The request-level refusals: a unit named twice differently, an encoding
// the service does not read, and a body over MaxBodyBytes.
func TestUploadRefusals(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 1 << 10 })
	for _, tc := range []struct {
		name   string
		header map[string]string
		body   string
		code   int
	}{
		{"unit in query and header differ", map[string]string{UnitHeader: "ship2"}, ndjson(0, 3), http.StatusBadRequest},
		{"unknown content encoding", map[string]string{"Content-Encoding": "br"}, ndjson(0, 3), http.StatusUnsupportedMediaType},
		{"body over the limit", nil, ndjson(0, 200), http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, e.srv.URL+PathIngest+"?unit=ship1", strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+testKey)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || len(b) == 0 {
				t.Fatalf("%s: %s, want %d with a message", resp.Status, b, tc.code)
			}
		})
	}
}
