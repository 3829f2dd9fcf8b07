package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/api/ingest"
	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/projections"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// The ingest scenario measures readings/s through POST /ingest:
//
//   - logbook: a real net/http server on a loopback port serving
//     api/ingest over the embedded store (default options, a fresh
//     directory, durable before the answer), and U clients in the same
//     process each streaming uploads of ingestLines NDJSON lines
//     (~62 bytes, 8 sensors, Unix-millisecond timestamps, every reading
//     distinct) back to back for units bench-u<c>. Counted: the readings
//     the service acknowledged as durable (logbook_ingest_readings_
//     accepted_total) during the window; p50/p99 are of whole uploads
//     completed in it.
//   - store-direct (the limit): the same readings, already decoded, as
//     ReadingsBatch events of ingestChunk readings with random ids,
//     appended by U writers straight to the same kind of store: what is
//     left when HTTP, NDJSON decoding and chunking cost nothing.
//
// Clients and server share the machine's cores, as they do on loopback.
// Targets: the 500,000 readings/s with 4 uploads, and HTTP plus
// NDJSON decoding costing at most 3 times the log's own work
// (logbook >= 0.25 x store-direct).

func init() {
	register(Scenario{
		Name:  "ingest",
		About: "NDJSON readings over HTTP on loopback into the durable embedded log; peer: the same readings appended directly",
		Run:   runIngest,
		Targets: []Target{
			{Name: "ingest-vs-500k", Measured: Selector{Subject: "logbook", Params: []Param{P("uploads", 4)}}, Constant: 500_000, Factor: 1},
			{Name: "ingest-vs-store-direct", Measured: Selector{Subject: "logbook", Params: []Param{P("uploads", 4)}},
				Reference: Selector{Subject: "store-direct", Params: []Param{P("writers", 4)}}, Factor: 0.25},
		},
	})
}

const (
	ingestLines   = 100_000 // lines per upload
	ingestChunk   = 1280    // readings per event of store-direct: ingest's average chunk
	ingestSensors = 8
	ingestKey     = "bench-key"
)

func runIngest(ctx context.Context, cfg *Config) ([]Result, error) {
	var cases []Case
	for _, u := range []int{1, 4, 16} {
		if cfg.Quick && u != 4 {
			continue
		}
		cases = append(cases, Case{
			Subject: "logbook",
			Params:  []Param{P("uploads", int64(u)), P("lines_per_upload", ingestLines)},
			Run:     func(ctx context.Context) (LoadStats, error) { return ingestHTTP(ctx, cfg, u) },
		})
	}
	cases = append(cases, Case{
		Subject: "store-direct",
		Params:  []Param{P("writers", 4), P("batch", ingestChunk)},
		Run:     func(ctx context.Context) (LoadStats, error) { return ingestDirect(ctx, cfg, 4) },
	})
	return RunCases(ctx, cfg, "ingest", cases)
}

// ingestHTTP runs uploads clients against a fresh server and store.
func ingestHTTP(ctx context.Context, cfg *Config, uploads int) (LoadStats, error) {
	dir, err := cfg.TempDir("ingest")
	if err != nil {
		return LoadStats{}, err
	}
	defer os.RemoveAll(dir)
	st, err := embedded.Open(ctx, dir)
	if err != nil {
		return LoadStats{}, err
	}
	defer st.Close()
	svc, err := ingest.New(ingest.Config{
		Store:    st,
		Readings: notReady{},
		Authorize: func(r *http.Request) (string, error) {
			if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+ingestKey)) != 1 {
				return "", ingest.ErrUnauthenticated
			}
			return "bench", nil
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return LoadStats{}, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(svc)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return LoadStats{}, err
	}
	srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: uploads, DisableCompression: true, WriteBufferSize: 64 << 10,
	}}
	defer client.CloseIdleConnections()
	url := "http://" + ln.Addr().String() + ingest.PathIngest

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, uploads)
	var measuring atomic.Bool
	var mu sync.Mutex
	var hist histogram // whole uploads completed in the window
	for c := range uploads {
		wg.Go(func() {
			gen := newReadingsBody(c)
			for runCtx.Err() == nil {
				start := time.Now()
				gen.reset(ingestLines)
				req, err := http.NewRequestWithContext(runCtx, http.MethodPost, url+"?unit=bench-u"+strconv.Itoa(c), gen)
				if err != nil {
					errs <- err
					return
				}
				req.Header.Set("Authorization", "Bearer "+ingestKey)
				req.Header.Set("Content-Type", "application/x-ndjson")
				resp, err := client.Do(req)
				if err != nil {
					if runCtx.Err() == nil {
						errs <- err
					}
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("upload: %s: %s", resp.Status, oneLine(string(body), 300))
					return
				}
				if measuring.Load() {
					mu.Lock()
					hist.Record(time.Since(start))
					mu.Unlock()
				}
			}
		})
	}
	wait := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case err := <-errs:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err = wait(cfg.Warmup)
	a0, t0 := acceptedReadings(reg), time.Now()
	measuring.Store(true)
	if err == nil {
		err = wait(cfg.Duration)
	}
	measuring.Store(false)
	a1, elapsed := acceptedReadings(reg), time.Since(t0)
	cancel()
	wg.Wait()
	if err != nil {
		return LoadStats{}, err
	}
	mu.Lock()
	defer mu.Unlock()
	return LoadStats{Units: a1 - a0, Seconds: elapsed.Seconds(), Calls: int64(hist.Count()), Latency: hist}, nil
}

// acceptedReadings reads logbook_ingest_readings_accepted_total.
func acceptedReadings(g prometheus.Gatherer) int64 {
	mfs, err := g.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == "logbook_ingest_readings_accepted_total" && len(mf.GetMetric()) == 1 {
			return int64(mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	return 0
}

// notReady is a read model that never is: the scenario uploads only.
type notReady struct{}

func (notReady) View(context.Context, string, func(projections.Querier) error) error {
	return projections.ErrNotReady
}

// readingsBody streams NDJSON readings, rendering lines into a reused
// block: only the digits that change are rewritten, so the client costs
// the server's cores little.
type readingsBody struct {
	block []byte
	// tsAt and valAt are the offsets of each line's timestamp (13
	// digits) and value (3 digits) in block.
	tsAt, valAt []int
	full        int // length of block with all blockLines lines
	off         int // next unread byte of block; len(block) when spent
	left        int // lines still to render after block
	ms          int64
}

const blockLines = 512

func newReadingsBody(client int) *readingsBody {
	b := &readingsBody{ms: 1795341600000 + int64(client)*1e9}
	for i := range blockLines {
		line := fmt.Sprintf(`{"sensor":"sensor-%d","value":1000.5,"timestamp":`, i%ingestSensors)
		b.valAt = append(b.valAt, len(b.block)+len(line)-len("000.5,\"timestamp\":"))
		b.block = append(b.block, line...)
		b.tsAt = append(b.tsAt, len(b.block))
		b.block = append(b.block, "0000000000000}\n"...)
	}
	b.full, b.off = len(b.block), len(b.block)
	return b
}

// reset starts a new body of n lines.
func (b *readingsBody) reset(n int) { b.left, b.off = n, len(b.block) }

func (b *readingsBody) Read(p []byte) (int, error) {
	if b.off == len(b.block) {
		if b.left == 0 {
			return 0, io.EOF
		}
		n := min(blockLines, b.left)
		for i := range n {
			b.ms++
			putDigits(b.block[b.tsAt[i]:b.tsAt[i]+13], b.ms)
			putDigits(b.block[b.valAt[i]:b.valAt[i]+3], b.ms%1000)
		}
		end := b.full
		if n < blockLines {
			end = b.tsAt[n-1] + len("0000000000000}\n")
		}
		b.left -= n
		b.block, b.off = b.block[:end], 0
	}
	n := copy(p, b.block[b.off:])
	b.off += n
	if b.off == len(b.block) {
		b.block = b.block[:b.full]
		b.off = len(b.block)
	}
	return n, nil
}

// putDigits writes v into dst as len(dst) decimal digits, zero-padded.
func putDigits(dst []byte, v int64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// ingestDirect appends the same readings, already decoded, as
// ReadingsBatch events straight to a fresh store.
func ingestDirect(ctx context.Context, cfg *Config, writers int) (LoadStats, error) {
	dir, err := cfg.TempDir("ingest-direct")
	if err != nil {
		return LoadStats{}, err
	}
	defer os.RemoveAll(dir)
	st, err := embedded.Open(ctx, dir)
	if err != nil {
		return LoadStats{}, err
	}
	defer st.Close()
	sensors := make([]string, ingestSensors)
	for i := range sensors {
		sensors[i] = "sensor-" + strconv.Itoa(i)
	}
	stats, err := RunLoad(ctx, Load{
		Writers: writers, PerCall: ingestChunk, Warmup: cfg.Warmup, Measure: cfg.Duration,
		NewOp: func(w int) (Op, error) {
			stream := "readings-direct-u" + strconv.Itoa(w)
			ms := int64(1795341600000) + int64(w)*1e9
			b := &logbookv1.ReadingsBatch{
				Sensors:       sensors,
				SensorIndex:   make([]uint32, ingestChunk),
				Values:        make([]float64, ingestChunk),
				TimesUnixNano: make([]int64, ingestChunk),
			}
			return func(ctx context.Context) error {
				for i := range ingestChunk {
					ms++
					b.SensorIndex[i] = uint32(i % ingestSensors)
					b.Values[i] = float64(ms%1000) + 0.5
					b.TimesUnixNano[i] = ms * 1e6
				}
				data, err := proto.Marshal(b)
				if err != nil {
					return err
				}
				ev := events.Event{ID: uuid.New(), Type: string(proto.MessageName(b)), Data: data}
				_, err = st.Append(ctx, stream, events.Any, ev)
				return err
			}, nil
		},
	})
	if errors.Is(err, context.Canceled) && ctx.Err() == nil {
		err = nil
	}
	return stats, err
}
