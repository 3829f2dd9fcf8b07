package projections

import (
	"context"
)

// Dialect names the SQL flavour of a sink.
type Dialect string

// Dialects of the SQL sinks.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Sink stores projection tables, checkpoints, migrations and the current
// version of each projection. Implementations (projections/sqlite,
// projections/postgres) are safe for concurrent use and pass
// projections/sinktest.
//
// Bookkeeping lives in three tables every sink creates:
// logbook_projection_checkpoints (name, version, checkpoint),
// logbook_projection_current (name, version) and
// logbook_projection_migrations (name, version, id, applied_at).
type Sink interface {
	// Dialect is the SQL flavour handlers write for.
	Dialect() Dialect

	// Prepare creates the bookkeeping tables if needed, then, in one
	// transaction, applies the migrations of (name, version) that are not
	// recorded yet, records them, creates the version's checkpoint row
	// (at 0) if missing, and returns the version's checkpoint.
	Prepare(ctx context.Context, name string, version int, migrations []Migration) (checkpoint uint64, err error)

	// Apply runs fn in one transaction on (name, version)'s tables and
	// moves its checkpoint from from to to in the same transaction. When
	// the stored checkpoint is not from, nothing is written and the error
	// wraps ErrCheckpointMismatch. fn may be nil (only the checkpoint
	// moves). An error from fn rolls everything back and is returned as is.
	Apply(ctx context.Context, name string, version int, from, to uint64, fn func(Tx) error) error

	// Checkpoint returns the checkpoint of (name, version), 0 when it has none.
	Checkpoint(ctx context.Context, name string, version int) (uint64, error)

	// Current returns the version readers are served, or ErrNoVersion.
	Current(ctx context.Context, name string) (int, error)

	// Switch atomically makes version current and, in the same
	// transaction, drops the tables, checkpoints and migration records of
	// every older version of name (newer ones may be rebuilding). A
	// version older than the current one gives ErrStaleVersion.
	Switch(ctx context.Context, name string, version int) error

	// View runs fn in a read-only transaction on the current version's
	// tables (q.Table resolves against it), or returns ErrNoVersion. A
	// View that races a Switch is retried once on the new version.
	View(ctx context.Context, name string, fn func(q Querier) error) error

	// Close releases the sink; it is idempotent. Calls after Close return
	// an error wrapping ErrClosed.
	Close() error
}

// Querier runs SQL against one projection version's tables. Queries use
// '?' placeholders on every dialect (sinks rebind them) and name tables
// through Table.
type Querier interface {
	// Dialect is the SQL flavour of the sink.
	Dialect() Dialect
	// Table returns the physical name of the projection version's table:
	// Table("units") = "fleet_v2_units". It panics on an invalid name.
	Table(name string) string
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// Query runs a query; the caller closes the Rows.
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryRow runs a query expected to return at most one row; Scan
	// returns ErrNoRows when it returned none.
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Tx is the transaction a Handler writes in.
type Tx interface {
	Querier
	// Upsert inserts rows into Table(u.Table) in as few statements as the
	// sink allows and resolves conflicts on u.Key as u says; it returns
	// the number of rows inserted or updated. With DoUpdate, rows must not
	// repeat a key (fold them first). Each row has len(u.Columns) values.
	Upsert(ctx context.Context, u Upsert, rows [][]any) (int64, error)
}

// Rows is the result of Querier.Query.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Row is the result of Querier.QueryRow.
type Row interface {
	Scan(dest ...any) error
}

// OnConflict says what Upsert does with a row whose key exists.
type OnConflict int

const (
	// DoNothing keeps the existing row (cloud-lada's ON CONFLICT DO NOTHING).
	DoNothing OnConflict = iota
	// DoUpdate updates the existing row: with Upsert.Set, by those
	// assignments; without, every non-key column takes the new value.
	DoUpdate
)

// Upsert describes a bulk insert with conflict handling.
type Upsert struct {
	// Table is the logical table name, as given to Querier.Table.
	Table string
	// Columns are the inserted columns, in row order.
	Columns []string
	// Key are the columns of the unique constraint conflicts are detected on.
	Key []string
	// OnConflict: DoNothing or DoUpdate.
	OnConflict OnConflict
	// Set are DoUpdate's assignments, valid on every dialect: the
	// existing row is "cur", the proposed one "excluded", e.g.
	// "n = cur.n + excluded.n".
	Set []string
}
