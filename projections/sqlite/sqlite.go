package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers database/sql driver "sqlite"

	"github.com/logbook-fleet/logbook/projections"
)

func init() {
	projections.RegisterSink("sqlite", openURL)
}

// Memory is the path that keeps the database in memory (one connection,
// nothing survives Close). Meant for tests.
const Memory = ":memory:"

// maxVars bounds the placeholders of one statement (SQLite's default limit
// is 32766).
const maxVars = 32000

// maxRowsPerInsert bounds the rows of one multi-row INSERT.
const maxRowsPerInsert = 500

// Sink is the SQLite projection sink: one database file in WAL mode with a
// busy timeout, one writer connection (transactions BEGIN IMMEDIATE) and a
// pool of readers. It is safe for concurrent use.
type Sink struct {
	w, r      *sql.DB
	closeOnce sync.Once
	closed    chan struct{}
}

var _ projections.Sink = (*Sink)(nil)

// Open opens (creating if needed) the database at path, or an in-memory one
// for Memory. ctx bounds the first connection.
func Open(ctx context.Context, path string) (*Sink, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("%w: sqlite path %q: empty or contains '?' or '#'", projections.ErrBadURL, path)
	}
	s := &Sink{closed: make(chan struct{})}
	const pragmas = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	if path == Memory {
		db, err := sql.Open("sqlite", "file::memory:?"+pragmas)
		if err != nil {
			return nil, fmt.Errorf("sqlite: open memory: %w", err)
		}
		db.SetMaxOpenConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
		s.w, s.r = db, db
	} else {
		// NORMAL in WAL mode loses at most the last commits on power
		// loss, never consistency: rows and checkpoint are lost together
		// and the runner replays them.
		base := "file:" + path + "?" + pragmas + "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
		w, err := sql.Open("sqlite", base+"&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		w.SetMaxOpenConns(1)
		r, err := sql.Open("sqlite", base)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		r.SetMaxOpenConns(4)
		s.w, s.r = w, r
	}
	if err := s.w.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if _, err := s.w.ExecContext(ctx, bookkeeping); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: create bookkeeping tables: %w", err)
	}
	return s, nil
}

// openURL accepts sqlite:///abs/path.db, sqlite:relative/path.db and
// sqlite::memory:.
func openURL(ctx context.Context, u *url.URL) (projections.Sink, error) {
	var path string
	switch {
	case u.Opaque != "":
		path = u.Opaque
	case u.Host != "":
		return nil, fmt.Errorf("%w %q: sqlite URLs have no host (want sqlite:///abs/path.db, sqlite:rel/path.db or sqlite::memory)", projections.ErrBadURL, u.Redacted())
	default:
		path = u.Path
	}
	if path == "" {
		return nil, fmt.Errorf("%w %q: no path (want sqlite:///abs/path.db or sqlite::memory)", projections.ErrBadURL, u.Redacted())
	}
	if u.RawQuery != "" {
		return nil, fmt.Errorf("%w %q: sqlite URLs take no query parameters", projections.ErrBadURL, u.Redacted())
	}
	return Open(ctx, path)
}

const bookkeeping = `
CREATE TABLE IF NOT EXISTS logbook_projection_checkpoints (
	name TEXT NOT NULL, version BIGINT NOT NULL, checkpoint BIGINT NOT NULL, updated_at TEXT NOT NULL,
	PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS logbook_projection_current (
	name TEXT PRIMARY KEY, version BIGINT NOT NULL, switched_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logbook_projection_migrations (
	name TEXT NOT NULL, version BIGINT NOT NULL, id TEXT NOT NULL, applied_at TEXT NOT NULL,
	PRIMARY KEY (name, version, id));`

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

func (s *Sink) check() error {
	select {
	case <-s.closed:
		return fmt.Errorf("sqlite sink: %w", projections.ErrClosed)
	default:
		return nil
	}
}

// Dialect implements projections.Sink.
func (s *Sink) Dialect() projections.Dialect { return projections.SQLite }

// DB returns the reader pool, for tests and tools that read bookkeeping
// directly. Read models go through View.
func (s *Sink) DB() *sql.DB { return s.r }

// Close implements projections.Sink.
func (s *Sink) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		err = s.w.Close()
		if s.r != s.w {
			err = errors.Join(err, s.r.Close())
		}
	})
	return err
}

// writeTx runs fn in a write transaction.
func (s *Sink) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	if err := s.check(); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, ignoreDone(tx.Rollback()))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// Prepare implements projections.Sink.
func (s *Sink) Prepare(ctx context.Context, name string, version int, migs []projections.Migration) (uint64, error) {
	if err := projections.ValidateName(name); err != nil {
		return 0, err
	}
	var cp uint64
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for _, m := range migs {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM logbook_projection_migrations WHERE name = ? AND version = ? AND id = ?`, name, version, m.ID).Scan(&one)
			if err == nil {
				continue
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("sqlite: read migrations: %w", err)
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("sqlite: migration %s of %s v%d: %w", m.ID, name, version, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO logbook_projection_migrations (name, version, id, applied_at) VALUES (?, ?, ?, ?)`, name, version, m.ID, now()); err != nil {
				return fmt.Errorf("sqlite: record migration %s: %w", m.ID, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO logbook_projection_checkpoints (name, version, checkpoint, updated_at) VALUES (?, ?, 0, ?) ON CONFLICT (name, version) DO NOTHING`, name, version, now()); err != nil {
			return fmt.Errorf("sqlite: create checkpoint: %w", err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT checkpoint FROM logbook_projection_checkpoints WHERE name = ? AND version = ?`, name, version).Scan(&cp); err != nil {
			return fmt.Errorf("sqlite: read checkpoint: %w", err)
		}
		return nil
	})
	return cp, err
}

// Apply implements projections.Sink.
func (s *Sink) Apply(ctx context.Context, name string, version int, from, to uint64, fn func(projections.Tx) error) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE logbook_projection_checkpoints SET checkpoint = ?, updated_at = ? WHERE name = ? AND version = ? AND checkpoint = ?`, to, now(), name, version, from)
		if err != nil {
			return fmt.Errorf("sqlite: write checkpoint: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("%w: %s v%d is not at %d", projections.ErrCheckpointMismatch, name, version, from)
		}
		if fn == nil {
			return nil
		}
		return fn(&txn{conn: tx, name: name, version: version})
	})
}

// Checkpoint implements projections.Sink.
func (s *Sink) Checkpoint(ctx context.Context, name string, version int) (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var cp uint64
	err := s.r.QueryRowContext(ctx, `SELECT checkpoint FROM logbook_projection_checkpoints WHERE name = ? AND version = ?`, name, version).Scan(&cp)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: read checkpoint: %w", err)
	}
	return cp, nil
}

// Current implements projections.Sink.
func (s *Sink) Current(ctx context.Context, name string) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	return current(ctx, s.r, name)
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func current(ctx context.Context, q queryRower, name string) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, `SELECT version FROM logbook_projection_current WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s", projections.ErrNoVersion, name)
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: read current version: %w", err)
	}
	return v, nil
}

// Switch implements projections.Sink.
func (s *Sink) Switch(ctx context.Context, name string, version int) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		cur, err := current(ctx, tx, name)
		switch {
		case errors.Is(err, projections.ErrNoVersion):
		case err != nil:
			return err
		case cur > version:
			return fmt.Errorf("%w: %s serves v%d, switch asked for v%d", projections.ErrStaleVersion, name, cur, version)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO logbook_projection_current (name, version, switched_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET version = excluded.version, switched_at = excluded.switched_at`, name, version, now()); err != nil {
			return fmt.Errorf("sqlite: write current version: %w", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ? ESCAPE '\'`,
			strings.ReplaceAll(name, "_", `\_`)+`\_v%`)
		if err != nil {
			return fmt.Errorf("sqlite: list tables: %w", err)
		}
		var drop []string
		for rows.Next() {
			var t string
			if err := rows.Scan(&t); err != nil {
				rows.Close()
				return err
			}
			if v, ok := projections.VersionOfTable(name, t); ok && v < version {
				drop = append(drop, t)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("sqlite: list tables: %w", err)
		}
		for _, t := range drop {
			if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS "`+t+`"`); err != nil {
				return fmt.Errorf("sqlite: drop %s: %w", t, err)
			}
		}
		for _, q := range []string{
			`DELETE FROM logbook_projection_checkpoints WHERE name = ? AND version < ?`,
			`DELETE FROM logbook_projection_migrations WHERE name = ? AND version < ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, name, version); err != nil {
				return fmt.Errorf("sqlite: forget old versions: %w", err)
			}
		}
		return nil
	})
}

// View implements projections.Sink.
func (s *Sink) View(ctx context.Context, name string, fn func(projections.Querier) error) error {
	if err := s.check(); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		tx, err := s.r.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlite: begin read: %w", err)
		}
		v, err := current(ctx, tx, name)
		if err != nil {
			tx.Rollback()
			return err
		}
		err = fn(&txn{conn: tx, name: name, version: v})
		tx.Rollback()
		if err == nil || attempt > 0 {
			return err
		}
		// Retry once when a Switch moved the projection meanwhile.
		if nv, cerr := s.Current(ctx, name); cerr != nil || nv == v {
			return err
		}
	}
}

// conn is what *sql.Tx offers.
type conn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// txn implements projections.Tx on a database/sql transaction.
type txn struct {
	conn    conn
	name    string
	version int
}

func (t *txn) Dialect() projections.Dialect { return projections.SQLite }

func (t *txn) Table(name string) string { return projections.TableName(t.name, t.version, name) }

func (t *txn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := t.conn.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t *txn) Query(ctx context.Context, query string, args ...any) (projections.Rows, error) {
	rows, err := t.conn.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (t *txn) QueryRow(ctx context.Context, query string, args ...any) projections.Row {
	return row{t.conn.QueryRowContext(ctx, query, args...)}
}

type row struct{ r *sql.Row }

func (r row) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %w", projections.ErrNoRows, err)
	}
	return err
}

func (t *txn) Upsert(ctx context.Context, u projections.Upsert, rows [][]any) (int64, error) {
	if err := projections.ValidateUpsert(u, rows); err != nil {
		return 0, err
	}
	table := t.Table(u.Table)
	per := min(maxRowsPerInsert, maxVars/len(u.Columns))
	var total int64
	var full string
	args := make([]any, 0, per*len(u.Columns))
	for len(rows) > 0 {
		n := min(per, len(rows))
		var q string
		if n == per {
			if full == "" {
				full = projections.UpsertSQL(table, u, per)
			}
			q = full
		} else {
			q = projections.UpsertSQL(table, u, n)
		}
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		res, err := t.conn.ExecContext(ctx, q, args...)
		if err != nil {
			return total, fmt.Errorf("upsert into %s: %w", table, err)
		}
		k, _ := res.RowsAffected()
		total += k
		rows = rows[n:]
	}
	return total, nil
}
