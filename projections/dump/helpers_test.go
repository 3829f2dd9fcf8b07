package dump

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
)

// testNow is the Dumper's clock in tests: long after every test day.
var testNow = time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)

// at returns a time on 2026-11-<day>.
func at(day, h, m, s, ms int) time.Time {
	return time.Date(2026, 11, day, h, m, s, ms*int(time.Millisecond), time.UTC)
}

// MustStore returns an empty in-memory embedded store closed at cleanup.
func MustStore(tb testing.TB) *embedded.Store {
	tb.Helper()
	s, err := embedded.Open(context.Background(), tb.TempDir(), embedded.InMemory(),
		embedded.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// reading is a payload of a type the test registry knows.
func reading(sensor string, value float64) proto.Message {
	st, err := structpb.NewStruct(map[string]any{"sensor": sensor, "value": value})
	if err != nil {
		panic(err)
	}
	return st
}

// testRegistry knows google.protobuf.Struct.
func testRegistry() *events.Registry {
	var r events.Registry
	r.Register(&structpb.Struct{})
	return &r
}

// MustAppend appends one event at time t to stream and returns its position.
func MustAppend(tb testing.TB, s events.Store, stream string, t time.Time, msg proto.Message) uint64 {
	tb.Helper()
	e, err := events.NewEvent(msg, events.Metadata{Principal: "alice", CorrelationID: "corr", CausationID: "cause"})
	if err != nil {
		tb.Fatal(err)
	}
	e.Time = t
	return mustAppendEvent(tb, s, stream, e)
}

// MustAppendRaw appends an event with an arbitrary type and payload.
func MustAppendRaw(tb testing.TB, s events.Store, stream string, t time.Time, typ string, data []byte) uint64 {
	tb.Helper()
	return mustAppendEvent(tb, s, stream, events.Event{ID: events.NewID(), Type: typ, Data: data, Time: t})
}

func mustAppendEvent(tb testing.TB, s events.Store, stream string, e events.Event) uint64 {
	tb.Helper()
	res, err := s.Append(context.Background(), stream, events.Any, e)
	if err != nil {
		tb.Fatal(err)
	}
	return res.LastPosition
}

// bucketKinds are the buckets every behaviour test runs against.
var bucketKinds = []struct {
	name string
	open func(tb testing.TB) *blob.Bucket
}{
	{"mem", func(tb testing.TB) *blob.Bucket {
		b := memblob.OpenBucket(nil)
		tb.Cleanup(func() { _ = b.Close() })
		return b
	}},
	{"file", func(tb testing.TB) *blob.Bucket {
		b, err := blob.OpenBucket(context.Background(), fileURL(tb.TempDir()))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = b.Close() })
		return b
	}},
}

func fileURL(dir string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String()
}

// MustDumper returns a Dumper on b with the test clock, the test registry and
// a discarding logger, plus opts.
func MustDumper(tb testing.TB, s events.Store, b *blob.Bucket, opts ...Option) *Dumper {
	tb.Helper()
	base := []Option{
		WithClock(func() time.Time { return testNow }),
		WithRegistry(testRegistry()),
		WithLogger(slog.New(slog.DiscardHandler)),
	}
	d, err := New(s, b, append(base, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// line is a decoded NDJSON line of either dump.
type line struct {
	Position      uint64          `json:"position"`
	Stream        string          `json:"stream"`
	Unit          *string         `json:"unit"`
	Version       uint64          `json:"version"`
	ID            string          `json:"id"`
	Time          time.Time       `json:"time"`
	Type          string          `json:"type"`
	Principal     string          `json:"principal"`
	CorrelationID string          `json:"correlation_id"`
	CausationID   string          `json:"causation_id"`
	PrevHash      string          `json:"prev_hash"`
	Hash          string          `json:"hash"`
	Payload       json.RawMessage `json:"payload"`
	PayloadBase64 *string         `json:"payload_base64"`
	PayloadError  string          `json:"payload_error"`
}

// MustLines reads a data object and decodes it line by line, strictly.
func MustLines(tb testing.TB, b *blob.Bucket, key string) []line {
	tb.Helper()
	r, err := b.NewReader(context.Background(), key, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	gz, err := gzip.NewReader(r)
	if err != nil {
		tb.Fatalf("%s: %v", key, err)
	}
	var out []line
	br := bufio.NewReader(gz)
	for n := 1; ; n++ {
		text, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(text) > 0 {
				tb.Fatalf("%s: line %d has no newline: %q", key, n, text)
			}
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		var l line
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			tb.Fatalf("%s: line %d: %v: %s", key, n, err, text)
		}
		out = append(out, l)
	}
}

func positions(ls []line) []uint64 {
	out := make([]uint64, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.Position)
	}
	return out
}
