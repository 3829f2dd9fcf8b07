package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/logbook-fleet/logbook/projections"
)

func init() {
	projections.RegisterSink("postgres", openURL)
	projections.RegisterSink("postgresql", openURL)
}

const (
	// maxVars bounds the parameters of one statement (the protocol's limit is 65535).
	maxVars = 65000
	// maxRowsPerInsert bounds the rows of one multi-row INSERT.
	maxRowsPerInsert = 1000
	// DefaultCopyThreshold is the batch size from which Upsert stages rows
	// with COPY instead of multi-row INSERTs; 0 disables COPY. Measured
	// (test/bench -scenario project, 2 cores): at 1,000-event batches
	// multi-row INSERT reached 98k events/s and COPY 55k; at 4,000 both
	// ~140k. So COPY is off by default; see WithCopyThreshold.
	DefaultCopyThreshold = 0
)

// Sink is the PostgreSQL projection sink on a pgx pool. Tables live in the
// connection's current schema (set search_path in the URL to isolate). It is
// safe for concurrent use.
type Sink struct {
	pool      *pgxpool.Pool
	copyMin   int
	closeOnce sync.Once
	closed    chan struct{}
}

var _ projections.Sink = (*Sink)(nil)

// Option configures Open.
type Option func(*Sink) error

// WithCopyThreshold makes Upsert stage batches of at least n rows through
// COPY into a temporary table and one INSERT ... SELECT ... ON CONFLICT,
// instead of multi-row INSERTs (default DefaultCopyThreshold; 0 disables
// COPY).
func WithCopyThreshold(n int) Option {
	return func(s *Sink) error {
		if n < 0 {
			return fmt.Errorf("postgres: WithCopyThreshold(%d): negative", n)
		}
		s.copyMin = n
		return nil
	}
}

// Open connects to the database named by a pgx connection string
// (postgres://user:pass@host:5432/db?search_path=schema&pool_max_conns=8)
// and creates the bookkeeping tables if needed.
func Open(ctx context.Context, connString string, opts ...Option) (*Sink, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: %v", projections.ErrBadURL, err)
	}
	s := &Sink{copyMin: DefaultCopyThreshold, closed: make(chan struct{})}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s.pool = pool
	err = s.writeTx(ctx, func(tx pgx.Tx) error {
		if err := lock(ctx, tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, bookkeeping)
		return err
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: create bookkeeping tables: %w", err)
	}
	return s, nil
}

func openURL(ctx context.Context, u *url.URL) (projections.Sink, error) {
	if u.Host == "" && u.Query().Get("host") == "" {
		return nil, fmt.Errorf("%w %q: no host; want postgres://user@host:5432/db", projections.ErrBadURL, u.Redacted())
	}
	return Open(ctx, u.String())
}

const bookkeeping = `
CREATE TABLE IF NOT EXISTS logbook_projection_checkpoints (
	name text NOT NULL, version bigint NOT NULL, checkpoint bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS logbook_projection_current (
	name text PRIMARY KEY, version bigint NOT NULL, switched_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS logbook_projection_migrations (
	name text NOT NULL, version bigint NOT NULL, id text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (name, version, id));`

// lock serializes schema changes (bookkeeping, migrations, switches) in
// the current schema for the rest of the transaction.
func lock(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.logbook_projections'))`)
	return err
}

// Pool returns the pgx pool, for tests and tools. Read models go through View.
func (s *Sink) Pool() *pgxpool.Pool { return s.pool }

// Dialect implements projections.Sink.
func (s *Sink) Dialect() projections.Dialect { return projections.Postgres }

// Close implements projections.Sink.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.pool.Close()
	})
	return nil
}

func (s *Sink) check() error {
	select {
	case <-s.closed:
		return fmt.Errorf("postgres sink: %w", projections.ErrClosed)
	default:
		return nil
	}
}

func (s *Sink) writeTx(ctx context.Context, fn func(pgx.Tx) error) error {
	if err := s.check(); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, ignoreClosed(tx.Rollback(context.WithoutCancel(ctx))))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

func ignoreClosed(err error) error {
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return err
}

// Prepare implements projections.Sink.
func (s *Sink) Prepare(ctx context.Context, name string, version int, migs []projections.Migration) (uint64, error) {
	if err := projections.ValidateName(name); err != nil {
		return 0, err
	}
	var cp int64
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		if err := lock(ctx, tx); err != nil {
			return err
		}
		for _, m := range migs {
			var one int
			err := tx.QueryRow(ctx, `SELECT 1 FROM logbook_projection_migrations WHERE name = $1 AND version = $2 AND id = $3`, name, version, m.ID).Scan(&one)
			if err == nil {
				continue
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("postgres: read migrations: %w", err)
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("postgres: migration %s of %s v%d: %w", m.ID, name, version, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO logbook_projection_migrations (name, version, id) VALUES ($1, $2, $3)`, name, version, m.ID); err != nil {
				return fmt.Errorf("postgres: record migration %s: %w", m.ID, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO logbook_projection_checkpoints (name, version, checkpoint) VALUES ($1, $2, 0) ON CONFLICT (name, version) DO NOTHING`, name, version); err != nil {
			return fmt.Errorf("postgres: create checkpoint: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT checkpoint FROM logbook_projection_checkpoints WHERE name = $1 AND version = $2`, name, version).Scan(&cp); err != nil {
			return fmt.Errorf("postgres: read checkpoint: %w", err)
		}
		return nil
	})
	return uint64(cp), err
}

// Apply implements projections.Sink.
func (s *Sink) Apply(ctx context.Context, name string, version int, from, to uint64, fn func(projections.Tx) error) error {
	return s.writeTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE logbook_projection_checkpoints SET checkpoint = $1, updated_at = now() WHERE name = $2 AND version = $3 AND checkpoint = $4`,
			int64(to), name, version, int64(from))
		if err != nil {
			return fmt.Errorf("postgres: write checkpoint: %w", err)
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("%w: %s v%d is not at %d", projections.ErrCheckpointMismatch, name, version, from)
		}
		if fn == nil {
			return nil
		}
		return fn(&txn{tx: tx, name: name, version: version, copyMin: s.copyMin})
	})
}

// Checkpoint implements projections.Sink.
func (s *Sink) Checkpoint(ctx context.Context, name string, version int) (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var cp int64
	err := s.pool.QueryRow(ctx, `SELECT checkpoint FROM logbook_projection_checkpoints WHERE name = $1 AND version = $2`, name, version).Scan(&cp)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: read checkpoint: %w", err)
	}
	return uint64(cp), nil
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func current(ctx context.Context, q queryRower, name string) (int, error) {
	var v int
	err := q.QueryRow(ctx, `SELECT version FROM logbook_projection_current WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s", projections.ErrNoVersion, name)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: read current version: %w", err)
	}
	return v, nil
}

// Current implements projections.Sink.
func (s *Sink) Current(ctx context.Context, name string) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	return current(ctx, s.pool, name)
}

// Switch implements projections.Sink. It takes the old tables' locks with
// a short lock_timeout and retries, so readers still on the old version
// are waited for and never deadlocked.
func (s *Sink) Switch(ctx context.Context, name string, version int) error {
	var err error
	for attempt := 0; attempt < 100; attempt++ {
		if err = s.switchOnce(ctx, name, version); !isLockTimeout(err) {
			return err
		}
		t := time.NewTimer(time.Duration(10+rand.IntN(40)) * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return err
}

func isLockTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}

func (s *Sink) switchOnce(ctx context.Context, name string, version int) error {
	return s.writeTx(ctx, func(tx pgx.Tx) error {
		if err := lock(ctx, tx); err != nil {
			return err
		}
		cur, err := current(ctx, tx, name)
		switch {
		case errors.Is(err, projections.ErrNoVersion):
		case err != nil:
			return err
		case cur > version:
			return fmt.Errorf("%w: %s serves v%d, switch asked for v%d", projections.ErrStaleVersion, name, cur, version)
		}
		rows, err := tx.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE $1 ESCAPE '\'`,
			strings.ReplaceAll(name, "_", `\_`)+`\_v%`)
		if err != nil {
			return fmt.Errorf("postgres: list tables: %w", err)
		}
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("postgres: list tables: %w", err)
		}
		var old []string
		for _, t := range tables {
			if v, ok := projections.VersionOfTable(name, t); ok && v < version {
				old = append(old, pgx.Identifier{t}.Sanitize())
			}
		}
		if len(old) > 0 {
			if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '200ms'`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(old, ", ")+` IN ACCESS EXCLUSIVE MODE`); err != nil {
				return fmt.Errorf("postgres: lock old tables: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO logbook_projection_current (name, version) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET version = excluded.version, switched_at = now()`, name, version); err != nil {
			return fmt.Errorf("postgres: write current version: %w", err)
		}
		if len(old) > 0 {
			if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+strings.Join(old, ", ")); err != nil {
				return fmt.Errorf("postgres: drop old tables: %w", err)
			}
		}
		for _, q := range []string{
			`DELETE FROM logbook_projection_checkpoints WHERE name = $1 AND version < $2`,
			`DELETE FROM logbook_projection_migrations WHERE name = $1 AND version < $2`,
		} {
			if _, err := tx.Exec(ctx, q, name, version); err != nil {
				return fmt.Errorf("postgres: forget old versions: %w", err)
			}
		}
		return nil
	})
}

// View implements projections.Sink. It reads in a REPEATABLE READ, READ
// ONLY transaction.
func (s *Sink) View(ctx context.Context, name string, fn func(projections.Querier) error) error {
	if err := s.check(); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return fmt.Errorf("postgres: begin read: %w", err)
		}
		v, err := current(ctx, tx, name)
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
			return err
		}
		err = fn(&txn{tx: tx, name: name, version: v})
		tx.Rollback(context.WithoutCancel(ctx))
		if err == nil || attempt > 0 {
			return err
		}
		// Retry once when a Switch dropped the tables meanwhile.
		if nv, cerr := s.Current(ctx, name); cerr != nil || nv == v {
			return err
		}
	}
}

// txn implements projections.Tx on a pgx transaction.
type txn struct {
	tx      pgx.Tx
	name    string
	version int
	copyMin int
}

func (t *txn) Dialect() projections.Dialect { return projections.Postgres }

func (t *txn) Table(name string) string { return projections.TableName(t.name, t.version, name) }

func (t *txn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(ctx, projections.Rebind(query), args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (t *txn) Query(ctx context.Context, query string, args ...any) (projections.Rows, error) {
	rows, err := t.tx.Query(ctx, projections.Rebind(query), args...)
	if err != nil {
		return nil, err
	}
	return pgRows{rows}, nil
}

func (t *txn) QueryRow(ctx context.Context, query string, args ...any) projections.Row {
	return pgRow{t.tx.QueryRow(ctx, projections.Rebind(query), args...)}
}

type pgRows struct{ pgx.Rows }

func (r pgRows) Close() error {
	r.Rows.Close()
	return r.Rows.Err()
}

type pgRow struct{ r pgx.Row }

func (r pgRow) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", projections.ErrNoRows, err)
	}
	return err
}

func (t *txn) Upsert(ctx context.Context, u projections.Upsert, rows [][]any) (int64, error) {
	if err := projections.ValidateUpsert(u, rows); err != nil {
		return 0, err
	}
	table := t.Table(u.Table)
	if t.copyMin > 0 && len(rows) >= t.copyMin {
		return t.upsertCopy(ctx, table, u, rows)
	}
	per := min(maxRowsPerInsert, maxVars/len(u.Columns))
	var total int64
	var full string
	args := make([]any, 0, min(per, len(rows))*len(u.Columns))
	for len(rows) > 0 {
		n := min(per, len(rows))
		var q string
		if n == per {
			if full == "" {
				full = projections.Rebind(projections.UpsertSQL(table, u, per))
			}
			q = full
		} else {
			q = projections.Rebind(projections.UpsertSQL(table, u, n))
		}
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		tag, err := t.tx.Exec(ctx, q, args...)
		if err != nil {
			return total, fmt.Errorf("upsert into %s: %w", table, err)
		}
		total += tag.RowsAffected()
		rows = rows[n:]
	}
	return total, nil
}

// upsertCopy stages rows in a per-connection temporary table with COPY and
// moves them with one INSERT ... SELECT ... ON CONFLICT.
func (t *txn) upsertCopy(ctx context.Context, table string, u projections.Upsert, rows [][]any) (int64, error) {
	stage := "tmp_" + table
	cols := strings.Join(u.Columns, ", ")
	if _, err := t.tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS `+stage+` (LIKE `+table+` INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`); err != nil {
		return 0, fmt.Errorf("upsert into %s: stage: %w", table, err)
	}
	if _, err := t.tx.CopyFrom(ctx, pgx.Identifier{stage}, u.Columns, pgx.CopyFromRows(rows)); err != nil {
		return 0, fmt.Errorf("upsert into %s: copy: %w", table, err)
	}
	tag, err := t.tx.Exec(ctx, `INSERT INTO `+table+` AS cur (`+cols+`) SELECT `+cols+` FROM `+stage+projections.OnConflictSQL(u))
	if err != nil {
		return 0, fmt.Errorf("upsert into %s: %w", table, err)
	}
	if _, err := t.tx.Exec(ctx, `TRUNCATE `+stage); err != nil {
		return 0, fmt.Errorf("upsert into %s: clear stage: %w", table, err)
	}
	return tag.RowsAffected(), nil
}
