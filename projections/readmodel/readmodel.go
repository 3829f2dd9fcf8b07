package readmodel

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Errors of the query functions, besides projections.ErrNotReady (the read
// model cannot serve yet) and the sink's own errors.
var (
	// ErrNotFound: a Get* function found no such row.
	ErrNotFound = errors.New("not found")
	// ErrInvalidQuery: a query's parameters are malformed (a bad label
	// selector, a bucket width of zero, a time range the wrong way round).
	ErrInvalidQuery = errors.New("invalid read model query")
)

// Paging bounds of the list functions: a Limit of 0 means DefaultLimit,
// larger than MaxLimit means MaxLimit.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Reader is what the query functions read through: a projections.Sink, or
// Guard(runner, sink) to check the runner's readiness first.
type Reader interface {
	View(ctx context.Context, name string, fn func(q projections.Querier) error) error
}

// Guard returns a Reader that answers with the runner's readiness error
// (wrapping projections.ErrNotReady) while the named projection is not
// ready, and reads through rd otherwise. Without Guard a query against a
// sink that has never finished a first catch-up also returns an error
// wrapping projections.ErrNotReady (from the sink's ErrNoVersion), but a
// rebuilt or restarted runner's reads are served from the stored tables
// while it catches up.
func Guard(r *projections.Runner, rd Reader) Reader { return guard{r, rd} }

type guard struct {
	r  *projections.Runner
	rd Reader
}

func (g guard) View(ctx context.Context, name string, fn func(q projections.Querier) error) error {
	if err := g.r.Ready(name); err != nil {
		return err
	}
	return g.rd.View(ctx, name, fn)
}

// view runs fn through rd and maps a sink without a current version to
// projections.ErrNotReady.
func view(ctx context.Context, rd Reader, name string, fn func(q projections.Querier) error) error {
	err := rd.View(ctx, name, fn)
	if errors.Is(err, projections.ErrNoVersion) && !errors.Is(err, projections.ErrNotReady) {
		return fmt.Errorf("%w: %w", projections.ErrNotReady, err)
	}
	return err
}

// All returns every read model of the package, for projections.Start.
func All() []projections.Projection {
	return []projections.Projection{Fleet(), Processes(), Commands(), Releases(), Audit(), Readings()}
}

//go:embed migrations
var migrations embed.FS

func migrationsOf(name string) fs.FS {
	sub, err := fs.Sub(migrations, "migrations/"+name)
	if err != nil {
		panic(err)
	}
	return sub
}

// registry decodes every payload the read models handle.
var registry = func() *events.Registry {
	r := &events.Registry{}
	r.Register(
		&logbookv1.UnitRegistered{}, &logbookv1.UnitLabelsSet{}, &logbookv1.UnitLabelsRemoved{},
		&logbookv1.UnitChannelAssigned{}, &logbookv1.UnitChannelReleaseObserved{},
		&logbookv1.UnitReleasePinned{}, &logbookv1.UnitReleaseUnpinned{}, &logbookv1.UnitDesiredReleaseChanged{},
		&logbookv1.UnitConnected{}, &logbookv1.UnitDisconnected{}, &logbookv1.UnitHeartbeatReceived{},
		&logbookv1.UnitReleaseReported{}, &logbookv1.UnitProcessesReported{}, &logbookv1.UnitDecommissioned{},
		&logbookv1.UnitCommandIssued{}, &logbookv1.UnitCommandDelivered{}, &logbookv1.UnitCommandSucceeded{},
		&logbookv1.UnitCommandFailed{}, &logbookv1.UnitCommandExpired{}, &logbookv1.UnitCommandCancelled{},
		&logbookv1.ProcessDesiredStatusSet{}, &logbookv1.ProcessRestartPolicySet{},
		&logbookv1.ProcessConfigured{}, &logbookv1.ProcessStatusReported{},
		&logbookv1.ReleasePublished{}, &logbookv1.ReleaseYanked{},
		&logbookv1.ChannelCreated{}, &logbookv1.ChannelReleasePromoted{}, &logbookv1.ChannelRolledBack{},
		&logbookv1.ChannelFeatureFlagSet{}, &logbookv1.ChannelFeatureFlagUnset{},
		&logbookv1.AgentReading{}, &logbookv1.ReadingsBatch{},
	)
	return r
}()

// decode decodes ev's payload; a payload that does not decode is poison.
func decode(ev events.Event) (proto.Message, error) {
	m, err := registry.Decode(ev)
	if err != nil {
		return nil, projections.Poison(err)
	}
	return m, nil
}

// typeName is the payload type name of m, as in Event.Type.
func typeName(m proto.Message) string { return string(proto.MessageName(m)) }

func typeNames(ms ...proto.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = typeName(m)
	}
	return out
}

// streamID returns the id part of "<category>-<id>".
func streamID(stream string) string {
	_, id, _ := strings.Cut(stream, "-")
	return id
}

// Times are stored as Unix nanoseconds in BIGINT columns, 0 for none.

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// at returns ts as nanoseconds, or the event's time when ts is unset.
func at(ts *timestamppb.Timestamp, ev events.Event) int64 {
	if ts != nil && ts.IsValid() && (ts.Seconds != 0 || ts.Nanos != 0) {
		return ts.AsTime().UnixNano()
	}
	return nanos(ev.Time)
}

// or returns s, or fallback when s is empty.
func or(s, fallback string) string {
	if s != "" {
		return s
	}
	return fallback
}

// enumWord turns "PROCESS_STATUS_RUNNING" with prefix "PROCESS_STATUS_"
// into "running", and the unspecified value into "".
func enumWord(name, prefix string) string {
	w := strings.ToLower(strings.TrimPrefix(name, prefix))
	if w == "unspecified" {
		return ""
	}
	return w
}

func marshalJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings and slices of strings always marshal
	}
	return string(b)
}

func unmarshalMap(s string) (map[string]string, error) {
	m := map[string]string{}
	if s == "" {
		return m, nil
	}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("decode stored JSON: %w", err)
	}
	return m, nil
}

func unmarshalList(s string) ([]string, error) {
	var l []string
	if s == "" {
		return l, nil
	}
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("decode stored JSON: %w", err)
	}
	return l, nil
}

func limitOf(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	}
	return n
}

// notFound maps projections.ErrNoRows to ErrNotFound.
func notFound(err error, what string) error {
	if errors.Is(err, projections.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return err
}

// noRow turns projections.ErrNoRows into nil, for cache loaders.
func noRow(err error) error {
	if errors.Is(err, projections.ErrNoRows) {
		return nil
	}
	return err
}

// where collects SQL conditions and their arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// scanAll runs query and scans every row with scan.
func scanAll[T any](ctx context.Context, q projections.Querier, query string, args []any, scan func(projections.Rows) (T, error)) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// cache holds the rows a batch touches, loaded once each, in first-touch
// order, so a batch reads and writes each row once.
type cache[K comparable, R any] struct {
	rows  map[K]*R
	order []K
	load  func(K) (*R, error) // nil, nil: no such row
	fresh func(K) *R
}

func newCache[K comparable, R any](load func(K) (*R, error), fresh func(K) *R) *cache[K, R] {
	return &cache[K, R]{rows: map[K]*R{}, load: load, fresh: fresh}
}

func (c *cache[K, R]) get(k K) (*R, error) {
	if r, ok := c.rows[k]; ok {
		return r, nil
	}
	r, err := c.load(k)
	if err != nil {
		return nil, err
	}
	if r == nil {
		r = c.fresh(k)
	}
	c.rows[k] = r
	c.order = append(c.order, k)
	return r, nil
}

// each calls fn for every cached row in first-touch order.
func (c *cache[K, R]) each(fn func(K, *R)) {
	for _, k := range c.order {
		fn(k, c.rows[k])
	}
}
