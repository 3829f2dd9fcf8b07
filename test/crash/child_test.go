package crash

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
)

// The child is this test binary re-executed with childDirEnv set: TestMain
// runs childMain instead of the tests. It appends under load until the parent
// kills it, reporting on stdout, one line per step:
//
//	try <stream> <id>...                        before an Append of these ids (the first id names the batch)
//	ack <first id> <firstPos> <lastPos> <firstVer> <lastVer>   after the Append returned them
//	nak <first id> <actual version>             the Append failed its expected version: nothing appended
//	err <message>                               anything unexpected; the child exits 3
//
// Each line is one write(2) of less than PIPE_BUF bytes, so lines from
// different goroutines never interleave and a kill never tears one.
const (
	childDirEnv  = "LOGBOOK_CRASH_CHILD_DIR"
	childSeedEnv = "LOGBOOK_CRASH_CHILD_SEED"

	childWriters  = 8
	sharedStreams = 4
	maxBatch      = 16
	// childLifetime bounds a child that lost its parent.
	childLifetime = 2 * time.Minute

	// segmentSize is small so that kills also land while the log rolls
	// over to a new segment file.
	segmentSize = 1 << 20

	payloadType = "logbook.test.CrashPayload"
	principal   = "crash-child"
)

func sharedStream(i int) string { return "crash-shared" + strconv.Itoa(i) }
func ownedStream(w int) string  { return "owned-w" + strconv.Itoa(w) }

// payload is the deterministic data of event id: 32 to 1052 bytes derived
// from the id, so the parent can check every byte read back.
func payload(id uuid.UUID) []byte {
	sum := sha256.Sum256(id[:])
	n := 32 + int(id[15])*4
	out := make([]byte, 0, n+32)
	for len(out) < n {
		out = append(out, sum[:]...)
	}
	return out[:n]
}

// batchEvents builds the events of a batch whose ids are given.
func batchEvents(ids []uuid.UUID) []events.Event {
	evs := make([]events.Event, len(ids))
	for i, id := range ids {
		evs[i] = events.Event{
			ID:       id,
			Type:     payloadType,
			Data:     payload(id),
			Metadata: events.Metadata{CorrelationID: ids[0].String(), Principal: principal},
		}
	}
	return evs
}

type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...) + "\n"
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := io.WriteString(l.w, line); err != nil {
		os.Exit(4) // the parent is gone
	}
}

func childMain(dir string) int {
	out := &lineWriter{w: os.Stdout}
	fail := func(format string, args ...any) int {
		out.printf("err "+format, args...)
		return 3
	}
	seed, err := strconv.ParseUint(os.Getenv(childSeedEnv), 10, 64)
	if err != nil {
		return fail("bad %s: %v", childSeedEnv, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), childLifetime)
	defer cancel()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	store, err := embedded.Open(ctx, dir, embedded.WithLogger(log), embedded.WithSegmentSize(segmentSize))
	if err != nil {
		return fail("open: %v", err)
	}
	out.printf("ready")

	errc := make(chan error, childWriters)
	for w := range childWriters {
		go func() { errc <- childWriter(ctx, store, out, w, rand.New(rand.NewPCG(seed, uint64(w)))) }()
	}
	// Run until killed; a writer that fails ends the child.
	err = <-errc
	if ctx.Err() != nil {
		return 0 // lifetime over: the parent never killed us
	}
	return fail("%v", err)
}

// childWriter appends until ctx is done. It owns ownedStream(w), which it
// appends to with Exactly: a conflict there means acknowledged events were
// lost. On the shared streams it appends with Any, or with Exactly at the
// last version it saw, which often conflicts.
func childWriter(ctx context.Context, store events.Store, out *lineWriter, w int, rng *rand.Rand) error {
	own := ownedStream(w)
	ownVersion, err := streamVersion(ctx, store, own)
	if err != nil {
		return err
	}
	seen := make(map[string]uint64) // shared stream -> last version this writer saw
	for ctx.Err() == nil {
		n := 1
		if rng.IntN(3) == 0 {
			n = 2 + rng.IntN(maxBatch-1)
		}
		ids := make([]uuid.UUID, n)
		for i := range ids {
			ids[i] = events.NewID()
		}
		stream, expect := own, events.Exactly(ownVersion)
		switch r := rng.IntN(10); {
		case r < 6:
			stream, expect = sharedStream(rng.IntN(sharedStreams)), events.Any
		case r < 8:
			stream = sharedStream(rng.IntN(sharedStreams))
			expect = events.Exactly(seen[stream])
		}

		var b strings.Builder
		b.WriteString("try ")
		b.WriteString(stream)
		for _, id := range ids {
			b.WriteByte(' ')
			b.WriteString(id.String())
		}
		out.printf("%s", b.String())

		res, err := store.Append(ctx, stream, expect, batchEvents(ids)...)
		var wrong *events.WrongExpectedVersionError
		switch {
		case errors.As(err, &wrong):
			if stream == own {
				return fmt.Errorf("append to own stream %s expecting %s: %w", stream, expect, err)
			}
			if v, _ := expect.Version(); wrong.Actual == v {
				return fmt.Errorf("append to %s: conflict reports actual version %d = expected: %w", stream, v, err)
			}
			seen[stream] = wrong.Actual
			out.printf("nak %s %d", ids[0], wrong.Actual)
			continue
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return fmt.Errorf("append %d event(s) to %s expecting %s: %w", n, stream, expect, err)
		}
		if res.LastPosition-res.FirstPosition != uint64(n-1) || res.LastVersion-res.FirstVersion != uint64(n-1) {
			return fmt.Errorf("append %d event(s) to %s: result %+v does not span %d events", n, stream, res, n)
		}
		if v, exact := expect.Version(); exact && res.FirstVersion != v+1 {
			return fmt.Errorf("append to %s expecting %s: first version %d", stream, expect, res.FirstVersion)
		}
		out.printf("ack %s %d %d %d %d", ids[0], res.FirstPosition, res.LastPosition, res.FirstVersion, res.LastVersion)
		if stream == own {
			ownVersion = res.LastVersion
		} else {
			seen[stream] = res.LastVersion
		}
	}
	return ctx.Err()
}

// streamVersion returns the current version of stream (0: no events).
func streamVersion(ctx context.Context, store events.Store, stream string) (uint64, error) {
	var v uint64
	for ev, err := range store.ReadStream(ctx, stream, 1) {
		if errors.Is(err, events.ErrStreamNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", stream, err)
		}
		if ev.Version != v+1 {
			return 0, fmt.Errorf("read %s: version %d after %d", stream, ev.Version, v)
		}
		v = ev.Version
	}
	return v, nil
}
