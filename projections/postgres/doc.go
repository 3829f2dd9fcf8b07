// Package postgres is the PostgreSQL projection sink (pgx v5, a pgxpool).
// It registers the URL schemes "postgres" and "postgresql"; the URL is a
// pgx connection string, so pool and session settings ride along:
//
//	postgres://logbook@db:5432/fleet?search_path=readmodels&pool_max_conns=8
//
//	sink, err := postgres.Open(ctx, url)
//	if err != nil { return err }
//	defer sink.Close()
//	r, err := projections.Start(ctx, store, sink, ps)
//
// Tables live in the connection's current schema. Schema changes
// (bookkeeping, migrations, switches) are serialized with a transaction
// advisory lock. Tx.Upsert sends multi-row INSERT ... ON CONFLICT
// statements (up to 1,000 rows each); WithCopyThreshold switches large
// batches to COPY into a temporary table, which measured no faster (see
// DefaultCopyThreshold). Switch locks the old tables with a short
// lock_timeout and retries, so readers in View are waited for, never
// deadlocked; View reads in REPEATABLE READ.
package postgres
