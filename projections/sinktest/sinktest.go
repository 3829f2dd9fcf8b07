package sinktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
)

// Config is what a sink's test gives the suite.
type Config struct {
	// NewSink returns a fresh, empty sink for one test; the suite closes it.
	NewSink func(t testing.TB) projections.Sink
	// NewStore returns a fresh, empty event store for one test; the suite
	// closes it.
	NewStore func(t testing.TB) events.Store
}

// Run runs the conformance suite against the sink cfg makes.
func Run(t *testing.T, cfg Config) {
	tests := []struct {
		name string
		fn   func(t *testing.T, cfg Config)
	}{
		{"Migrations", testMigrations},
		{"ApplyIsAtomic", testApplyAtomic},
		{"QueryAndUpsert", testQueryUpsert},
		{"SwitchAndView", testSwitchView},
		{"CloseIsIdempotent", testClose},
		{"RunnerFold", testRunnerFold},
		{"RunnerFilteredTail", testFilteredTail},
		{"HandlerErrorMidStream", testHandlerError},
		{"PoisonEvent", testPoison},
		{"RebuildUnderAppends", testRebuild},
		{"RuntimeRebuild", testRuntimeRebuild},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, cfg) })
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newSink(t testing.TB, cfg Config) projections.Sink {
	t.Helper()
	s := cfg.NewSink(t)
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t testing.TB, cfg Config) events.Store {
	t.Helper()
	s := cfg.NewStore(t)
	t.Cleanup(func() { s.Close() })
	return s
}

// QuietLogger discards the runner's logs.
func QuietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// MustAppendCounters appends n counter events over streams streams
// (values 1..n) and returns their sum.
func MustAppendCounters(tb testing.TB, ctx context.Context, st events.Store, streams, n int, first int64) int64 {
	tb.Helper()
	var sum int64
	for i := range n {
		v := first + int64(i)
		stream := fmt.Sprintf("%s-s%d", CounterCategory, i%streams)
		if _, err := st.Append(ctx, stream, events.Any, CounterEvent(v)); err != nil {
			tb.Fatalf("append: %v", err)
		}
		sum += v
	}
	return sum
}

func mustStart(t testing.TB, ctx context.Context, st events.Store, sink projections.Sink, ps []projections.Projection, opts ...projections.Option) *projections.Runner {
	t.Helper()
	opts = append([]projections.Option{projections.WithLogger(QuietLogger()),
		projections.WithBackoff(5*time.Millisecond, 50*time.Millisecond), projections.WithPollInterval(10 * time.Millisecond)}, opts...)
	r, err := projections.Start(ctx, st, sink, ps, opts...)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustFold(t testing.TB, ctx context.Context, st events.Store, sink projections.Sink, name string) {
	t.Helper()
	want, err := FoldLog(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := ReadFold(ctx, sink, name)
	if err != nil {
		t.Fatalf("ReadFold: %v", err)
	}
	if d := want.Diff(got); d != "" {
		t.Fatalf("read model differs from the fold of the log: %s", d)
	}
}

func testMigrations(t *testing.T, cfg Config) {
	ctx := ctxT(t)
	sink := newSink(t, cfg)
	fsys := fstest.MapFS{
		// Not idempotent on purpose: running it twice fails.
		"001_init.sql":        {Data: []byte(`CREATE TABLE {{table "items"}} (id BIGINT PRIMARY KEY, label TEXT NOT NULL)`)},
		"002_more.sql":        {Data: []byte(`CREATE TABLE {{table "other"}} (id BIGINT PRIMARY KEY)`)},
		"002_more.sqlite.sql": {Data: []byte(`CREATE TABLE {{table "other"}} (id INTEGER PRIMARY KEY) -- {{.Dialect}}`)},
	}
	migs, err := projections.LoadMigrations(fsys, sink.Dialect(), "things", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) != 2 || migs[0].ID != "001_init" || !strings.Contains(migs[0].SQL, "things_v1_items") {
		t.Fatalf("LoadMigrations = %+v", migs)
	}
	if sink.Dialect() == projections.SQLite && !strings.Contains(migs[1].SQL, "-- sqlite") {
		t.Fatalf("dialect variant not chosen: %q", migs[1].SQL)
	}
	for i := range 2 {
		cp, err := sink.Prepare(ctx, "things", 1, migs)
		if err != nil {
			t.Fatalf("Prepare #%d: %v", i+1, err)
		}
		if cp != 0 {
			t.Fatalf("Prepare #%d: checkpoint %d, want 0", i+1, cp)
		}
	}
	bad := []projections.Migration{{ID: "001_bad", SQL: "CREATE TABLE things_v2_a (id BIGINT); THIS IS NOT SQL"}}
	if _, err := sink.Prepare(ctx, "things", 2, bad); err == nil {
		t.Fatal("Prepare with a failing migration succeeded")
	}
	// The failed migration left nothing behind: a good one can create the same table.
	good := []projections.Migration{{ID: "001_bad", SQL: "CREATE TABLE things_v2_a (id BIGINT)"}}
	if _, err := sink.Prepare(ctx, "things", 2, good); err != nil {
		t.Fatalf("Prepare after a failed migration: %v", err)
	}
	if _, err := sink.Prepare(ctx, "Bad-Name", 1, nil); !errors.Is(err, projections.ErrInvalidName) {
		t.Fatalf("Prepare with a bad name: %v, want ErrInvalidName", err)
	}
}

func itemsMigration() []projections.Migration {
	return []projections.Migration{{ID: "001", SQL: "CREATE TABLE things_v1_items (id BIGINT PRIMARY KEY, label TEXT NOT NULL, n BIGINT NOT NULL DEFAULT 0)"}}
}

func testApplyAtomic(t *testing.T, cfg Config) {
	ctx := ctxT(t)
	sink := newSink(t, cfg)
	if _, err := sink.Prepare(ctx, "things", 1, itemsMigration()); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := sink.Apply(ctx, "things", 1, 0, 10, func(tx projections.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO "+tx.Table("items")+" (id, label) VALUES (?, ?)", 1, "a"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Apply = %v, want the handler's error", err)
	}
	if cp, _ := sink.Checkpoint(ctx, "things", 1); cp != 0 {
		t.Fatalf("checkpoint %d after a failed Apply, want 0", cp)
	}
	if err := sink.Apply(ctx, "things", 1, 0, 10, func(tx projections.Tx) error {
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+tx.Table("items")).Scan(&n); err != nil || n != 0 {
			return fmt.Errorf("rows after rollback: %d, %v", n, err)
		}
		_, err := tx.Exec(ctx, "INSERT INTO "+tx.Table("items")+" (id, label) VALUES (?, ?)", 1, "a")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if cp, _ := sink.Checkpoint(ctx, "things", 1); cp != 10 {
		t.Fatalf("checkpoint %d, want 10", cp)
	}
	if err := sink.Apply(ctx, "things", 1, 5, 20, nil); !errors.Is(err, projections.ErrCheckpointMismatch) {
		t.Fatalf("Apply from a stale checkpoint = %v, want ErrCheckpointMismatch", err)
	}
	if err := sink.Apply(ctx, "things", 1, 10, 20, nil); err != nil {
		t.Fatal(err)
	}
	if cp, _ := sink.Checkpoint(ctx, "things", 1); cp != 20 {
		t.Fatalf("checkpoint %d, want 20", cp)
	}
}

func testQueryUpsert(t *testing.T, cfg Config) {
	ctx := ctxT(t)
	sink := newSink(t, cfg)
	if _, err := sink.Prepare(ctx, "things", 1, itemsMigration()); err != nil {
		t.Fatal(err)
	}
	const big = 5000 // several statements, and COPY where the sink uses it
	rows := make([][]any, big)
	for i := range rows {
		rows[i] = []any{int64(i), fmt.Sprintf("it's %d?", i), int64(1)}
	}
	up := projections.Upsert{Table: "items", Columns: []string{"id", "label", "n"}, Key: []string{"id"}}
	err := sink.Apply(ctx, "things", 1, 0, 1, func(tx projections.Tx) error {
		if n, err := tx.Upsert(ctx, up, rows); err != nil || n != big {
			return fmt.Errorf("first upsert: %d rows, %v", n, err)
		}
		// DoNothing keeps the existing rows.
		dup := [][]any{{int64(0), "changed", int64(5)}, {int64(big), "new", int64(1)}}
		if n, err := tx.Upsert(ctx, up, dup); err != nil || n != 1 {
			return fmt.Errorf("do-nothing upsert: %d rows, %v", n, err)
		}
		// DoUpdate with Set adds; without Set replaces.
		add := up
		add.OnConflict, add.Set = projections.DoUpdate, []string{"n = cur.n + excluded.n"}
		if _, err := tx.Upsert(ctx, add, [][]any{{int64(1), "x", int64(41)}}); err != nil {
			return err
		}
		repl := up
		repl.OnConflict = projections.DoUpdate
		if _, err := tx.Upsert(ctx, repl, [][]any{{int64(2), "replaced", int64(7)}}); err != nil {
			return err
		}
		if _, err := tx.Upsert(ctx, add, rows); err != nil {
			return fmt.Errorf("big do-update upsert: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Switch(ctx, "things", 1); err != nil {
		t.Fatal(err)
	}
	err = sink.View(ctx, "things", func(q projections.Querier) error {
		var label string
		var n int64
		if err := q.QueryRow(ctx, "SELECT label, n FROM "+q.Table("items")+" WHERE id = ?", 0).Scan(&label, &n); err != nil {
			return err
		}
		if label != "it's 0?" || n != 2 {
			return fmt.Errorf("row 0 = %q %d, want \"it's 0?\" 2", label, n)
		}
		if err := q.QueryRow(ctx, "SELECT n FROM "+q.Table("items")+" WHERE id = ? AND label = 'it''s 1?'", 1).Scan(&n); err != nil || n != 43 {
			return fmt.Errorf("row 1 n = %d (%v), want 43", n, err)
		}
		if err := q.QueryRow(ctx, "SELECT label, n FROM "+q.Table("items")+" WHERE id = ?", 2).Scan(&label, &n); err != nil || label != "replaced" || n != 8 {
			return fmt.Errorf("row 2 = %q %d (%v), want replaced 8", label, n, err)
		}
		var count int64
		if err := q.QueryRow(ctx, "SELECT count(*) FROM "+q.Table("items")).Scan(&count); err != nil || count != big+1 {
			return fmt.Errorf("count = %d (%v), want %d", count, err, big+1)
		}
		if err := q.QueryRow(ctx, "SELECT n FROM "+q.Table("items")+" WHERE id = ?", -1).Scan(&n); !errors.Is(err, projections.ErrNoRows) {
			return fmt.Errorf("missing row: %v, want ErrNoRows", err)
		}
		rs, err := q.Query(ctx, "SELECT id FROM "+q.Table("items")+" WHERE id < ? ORDER BY id", 3)
		if err != nil {
			return err
		}
		defer rs.Close()
		var ids []int64
		for rs.Next() {
			var id int64
			if err := rs.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		if fmt.Sprint(ids) != "[0 1 2]" {
			return fmt.Errorf("ids %v", ids)
		}
		return rs.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func tableExists(ctx context.Context, sink projections.Sink, via, table string) (bool, error) {
	var n int64
	err := sink.View(ctx, via, func(q projections.Querier) error {
		query := "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
		if q.Dialect() == projections.Postgres {
			query = "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?"
		}
		return q.QueryRow(ctx, query, table).Scan(&n)
	})
	return n > 0, err
}

func testSwitchView(t *testing.T, cfg Config) {
	ctx := ctxT(t)
	sink := newSink(t, cfg)
	if _, err := sink.Current(ctx, "things"); !errors.Is(err, projections.ErrNoVersion) {
		t.Fatalf("Current before any switch = %v, want ErrNoVersion", err)
	}
	if err := sink.View(ctx, "things", func(projections.Querier) error { return nil }); !errors.Is(err, projections.ErrNoVersion) {
		t.Fatalf("View before any switch = %v, want ErrNoVersion", err)
	}
	for v := 1; v <= 2; v++ {
		m := []projections.Migration{{ID: "001", SQL: fmt.Sprintf("CREATE TABLE things_v%d_items (id BIGINT PRIMARY KEY)", v)}}
		if _, err := sink.Prepare(ctx, "things", v, m); err != nil {
			t.Fatal(err)
		}
		if err := sink.Apply(ctx, "things", v, 0, uint64(v), func(tx projections.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO "+tx.Table("items")+" (id) VALUES (?)", v*100)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	// A table of another projection whose name shares a prefix survives.
	if _, err := sink.Prepare(ctx, "things_x", 1, []projections.Migration{{ID: "001", SQL: "CREATE TABLE things_x_v1_items (id BIGINT)"}}); err != nil {
		t.Fatal(err)
	}
	if err := sink.Switch(ctx, "things_x", 1); err != nil {
		t.Fatal(err)
	}
	readID := func() (int64, error) {
		var id int64
		err := sink.View(ctx, "things", func(q projections.Querier) error {
			return q.QueryRow(ctx, "SELECT id FROM "+q.Table("items")).Scan(&id)
		})
		return id, err
	}
	if err := sink.Switch(ctx, "things", 1); err != nil {
		t.Fatal(err)
	}
	if id, err := readID(); err != nil || id != 100 {
		t.Fatalf("View on v1 = %d, %v; want 100", id, err)
	}
	if ok, err := tableExists(ctx, sink, "things", "things_v2_items"); err != nil || !ok {
		t.Fatalf("v2 table must exist before the switch (%v)", err)
	}
	if err := sink.Switch(ctx, "things", 2); err != nil {
		t.Fatal(err)
	}
	if v, err := sink.Current(ctx, "things"); err != nil || v != 2 {
		t.Fatalf("Current = %d, %v; want 2", v, err)
	}
	if id, err := readID(); err != nil || id != 200 {
		t.Fatalf("View on v2 = %d, %v; want 200", id, err)
	}
	for table, want := range map[string]bool{"things_v1_items": false, "things_v2_items": true, "things_x_v1_items": true} {
		if ok, err := tableExists(ctx, sink, "things", table); err != nil || ok != want {
			t.Fatalf("table %s exists = %v (%v), want %v", table, ok, err, want)
		}
	}
	if cp, _ := sink.Checkpoint(ctx, "things", 1); cp != 0 {
		t.Fatalf("v1 checkpoint survived the switch: %d", cp)
	}
	if err := sink.Switch(ctx, "things", 1); !errors.Is(err, projections.ErrStaleVersion) {
		t.Fatalf("Switch back to v1 = %v, want ErrStaleVersion", err)
	}
}

func testClose(t *testing.T, cfg Config) {
	sink := cfg.NewSink(t)
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := sink.Current(context.Background(), "things"); !errors.Is(err, projections.ErrClosed) {
		t.Fatalf("Current after Close = %v, want ErrClosed", err)
	}
}

func testRunnerFold(t *testing.T, cfg Config) {
	ctx := ctxT(t)
	st, sink := newStore(t, cfg), newSink(t, cfg)
	MustAppendCounters(t, ctx, st, 7, 3000, 1)
	// Events of another category are skipped but still move the checkpoint.
	if _, err := st.Append(ctx, "other-a", events.Any, CounterEvent(1000)); err != nil {
		t.Fatal(err)
	}
	r := mustStart(t, ctx, st, sink, []projections.Projection{Counter("counts", 1, CounterOptions{})}, projections.WithMaxBatch(256))
	if err := r.WaitReady(ctx, "counts"); err != nil {
		t.Fatal(err)
	}
	mustFold(t, ctx, st, sink, "counts")
	// Live: more events arrive after the catch-up.
	MustAppendCounters(t, ctx, st, 7, 500, 5000)
	head, _ := st.Head(ctx)
	waitFor(t, "live events", func() bool {
		s, _ := r.Status("counts")
		return s.Checkpoint >= head.Position-0 && s.Checkpoint == head.Position
	})
	mustFold(t, ctx, st, sink, "counts")
	s, _ := r.Status("counts")
	if !s.Ready || s.State != projections.StateLive || s.Lag != 0 || s.Serving != 1 || s.Events != 3500 {
		t.Fatalf("status %+v", s)
	}
	if err := r.Ready("counts"); err != nil {
		t.Fatal(err)
	}
	if err := r.Ready("nope"); !errors.Is(err, projections.ErrUnknownProjection) {
		t.Fatalf("Ready(unknown) = %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// A restart resumes from the checkpoint without doubling anything.
	MustAppendCounters(t, ctx, st, 3, 100, 9000)
	r2 := mustStart(t, ctx, st, sink, []projections.Projection{Counter("counts", 1, CounterOptions{})})
	if err := r2.WaitReady(ctx, "counts"); err != nil {
		t.Fatal(err)
	}
	mustFold(t, ctx, st, sink, "counts")
}

func testFilteredTail(t *testing.T, cfg Config) {
	ctx := ctxT(t)
	st, sink := newStore(t, cfg), newSink(t, cfg)
	MustAppendCounters(t, ctx, st, 2, 10, 1)
	for i := range 50 {
		if _, err := st.Append(ctx, "other-a", events.Any, CounterEvent(int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	r := mustStart(t, ctx, st, sink, []projections.Projection{Counter("counts", 1, CounterOptions{})})
	if err := r.WaitReady(ctx, "counts"); err != nil {
		t.Fatalf("a projection whose filter skips the tail of the log never got ready: %v", err)
	}
	s, _ := r.Status("counts")
	if s.Checkpoint != 60 || s.Lag != 0 {
		t.Fatalf("checkpoint %d lag %d, want 60 and 0", s.Checkpoint, s.Lag)
	}
	mustFold(t, ctx, st, sink, "counts")
}

func testHandlerError(t *testing.T, cfg Config) {
	ctx := ctxT(t)
	st, sink := newStore(t, cfg), newSink(t, cfg)
	MustAppendCounters(t, ctx, st, 5, 1000, 1)
	const failAt = 637
	var failures atomic.Int64
	var release atomic.Bool
	fail := func(ev events.Event) error {
		if ev.Position == failAt && !release.Load() {
			failures.Add(1)
			return errors.New("database hiccup")
		}
		return nil
	}
	r := mustStart(t, ctx, st, sink, []projections.Projection{Counter("counts", 1, CounterOptions{Fail: fail})}, projections.WithMaxBatch(100))
	// The handler fails before the runner records the failure: wait for
	// the record, not just the calls.
	waitFor(t, "repeated failures", func() bool {
		s, _ := r.Status("counts")
		return failures.Load() >= 3 && s.Errors >= 3
	})
	s, _ := r.Status("counts")
	if s.State != projections.StateRetrying && s.State != projections.StateCatchingUp {
		t.Fatalf("state %s, want retrying", s.State)
	}
	var ee *projections.EventError
	if !errors.As(s.LastError, &ee) || ee.Position != failAt || !strings.Contains(s.LastError.Error(), "database hiccup") {
		t.Fatalf("LastError = %v, want an EventError at position %d", s.LastError, failAt)
	}
	if s.Checkpoint != failAt-1 {
		t.Fatalf("checkpoint %d, want %d: events before the failing one commit, none after", s.Checkpoint, failAt-1)
	}
	if s.Ready || r.Ready("counts") == nil {
		t.Fatal("ready before catching up")
	}
	if err := r.Ready("counts"); !errors.Is(err, projections.ErrNotReady) {
		t.Fatalf("Ready = %v, want ErrNotReady", err)
	}
	if s.Errors < 3 {
		t.Fatalf("Errors = %d", s.Errors)
	}
	release.Store(true)
	if err := r.WaitReady(ctx, "counts"); err != nil {
		t.Fatal(err)
	}
	mustFold(t, ctx, st, sink, "counts")
}

func testPoison(t *testing.T, cfg Config) {
	ctx := ctxT(t)
	st, sink := newStore(t, cfg), newSink(t, cfg)
	MustAppendCounters(t, ctx, st, 3, 100, 1)
	bad := CounterEvent(0)
	bad.Data = []byte{0xff, 0xff, 0xff} // not a valid Int64Value
	res, err := st.Append(ctx, "counter-s0", events.Any, bad)
	if err != nil {
		t.Fatal(err)
	}
	MustAppendCounters(t, ctx, st, 3, 100, 1000)
	r := mustStart(t, ctx, st, sink, []projections.Projection{Counter("counts", 1, CounterOptions{})})
	err = r.WaitReady(ctx, "counts")
	if !errors.Is(err, projections.ErrStopped) || !errors.Is(err, projections.ErrPoison) && !strings.Contains(err.Error(), "position") {
		t.Fatalf("WaitReady = %v, want ErrStopped", err)
	}
	s, _ := r.Status("counts")
	var ee *projections.EventError
	if s.State != projections.StateStopped || !errors.As(s.LastError, &ee) || ee.Position != res.FirstPosition {
		t.Fatalf("status %s, %v; want stopped at position %d", s.State, s.LastError, res.FirstPosition)
	}
	if want := fmt.Sprintf("position %d", res.FirstPosition); !strings.Contains(s.LastError.Error(), want) {
		t.Fatalf("error %q does not name %q", s.LastError, want)
	}
	if s.Checkpoint != res.FirstPosition-1 {
		t.Fatalf("checkpoint %d, want %d", s.Checkpoint, res.FirstPosition-1)
	}
}

func testRebuild(t *testing.T, cfg Config) {
	ctx := ctxT(t)
	st, sink := newStore(t, cfg), newSink(t, cfg)
	MustAppendCounters(t, ctx, st, 11, 3000, 1)
	r1 := mustStart(t, ctx, st, sink, []projections.Projection{Counter("counts", 1, CounterOptions{})})
	if err := r1.WaitReady(ctx, "counts"); err != nil {
		t.Fatal(err)
	}
	r1.Close()
	v1, _, err := ReadFold(ctx, sink, "counts")
	if err != nil {
		t.Fatal(err)
	}

	// Appends keep coming while v2 rebuilds.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := st.Append(ctx, fmt.Sprintf("counter-live%d", i%5), events.Any, CounterEvent(i)); err != nil {
				t.Errorf("append: %v", err)
				return
			}
			time.Sleep(200 * time.Microsecond)
		}
	})
	r2 := mustStart(t, ctx, st, sink, []projections.Projection{Counter("counts", 2, CounterOptions{Delay: 2 * time.Millisecond})}, projections.WithMaxBatch(100))
	s, _ := r2.Status("counts")
	if s.State != projections.StateRebuilding || s.Serving != 1 || !s.Ready {
		t.Fatalf("status at rebuild start: %+v", s)
	}
	// Until the switch, readers get v1, unchanged.
	sawOld := 0
	for {
		s, _ := r2.Status("counts")
		got, version, err := ReadFold(ctx, sink, "counts")
		if err != nil {
			t.Fatalf("read during rebuild: %v", err)
		}
		if version == 2 {
			break
		}
		if s.Serving == 2 {
			continue // switched between the two reads
		}
		if d := v1.Diff(got); d != "" {
			t.Fatalf("v1 changed during the rebuild: %s", d)
		}
		sawOld++
		time.Sleep(2 * time.Millisecond)
	}
	if sawOld == 0 {
		t.Fatal("never read v1 during the rebuild")
	}
	close(stop)
	wg.Wait()
	head, _ := st.Head(ctx)
	waitFor(t, "v2 to catch up", func() bool { s, _ := r2.Status("counts"); return s.Checkpoint == head.Position })
	mustFold(t, ctx, st, sink, "counts")
	if ok, err := tableExists(ctx, sink, "counts", "counts_v1_streams"); err != nil || ok {
		t.Fatalf("v1 tables not dropped (%v)", err)
	}
	if v, _ := sink.Current(ctx, "counts"); v != 2 {
		t.Fatalf("current %d, want 2", v)
	}
	r2.Close()
	if _, err := projections.Start(ctx, st, sink, []projections.Projection{Counter("counts", 1, CounterOptions{})}); !errors.Is(err, projections.ErrStaleVersion) {
		t.Fatalf("Start with v1 after the switch = %v, want ErrStaleVersion", err)
	}
}
