// Package projections turns the event log into read models: the runner,
// checkpoints, readiness, rebuild and hot swap, and the Sink interface the
// SQL back-ends (projections/sqlite, projections/postgres) implement.
//
// A Projection is a name, a version, an events.Filter, versioned SQL
// migrations and a Handler. Start feeds each projection from its checkpoint
// (store.Subscribe from checkpoint+1) in batches of whatever is available,
// up to WithMaxBatch events, and commits each batch's rows and the new
// checkpoint in one transaction: a crash at any point neither loses nor
// doubles an effect.
//
//	//go:embed migrations/*.sql
//	var migrations embed.FS
//
//	sub, _ := fs.Sub(migrations, "migrations") // 001_init.sql: CREATE TABLE {{table "units"}} (...)
//	fleet := projections.Projection{
//		Name: "fleet", Version: 2, Migrations: sub,
//		Filter: events.Filter{Categories: []string{"unit"}},
//		Handler: projections.HandlerFunc(func(ctx context.Context, tx projections.Tx, batch []events.Event) error {
//			rows := make([][]any, 0, len(batch))
//			for _, ev := range batch {
//				msg, err := registry.Decode(ev) // a decode error stops the projection (ErrPoison)
//				if err != nil {
//					return err
//				}
//				rows = append(rows, []any{ev.Stream, label(msg), int64(ev.Position)})
//			}
//			_, err := tx.Upsert(ctx, projections.Upsert{
//				Table: "units", Columns: []string{"unit", "label", "position"}, Key: []string{"unit"},
//				OnConflict: projections.DoUpdate,
//			}, rows)
//			return err
//		}),
//	}
//
//	sink, err := projections.OpenSink(ctx, "sqlite:///var/lib/logbook/read.db") // import _ ".../projections/sinks"
//	r, err := projections.Start(ctx, store, sink, []projections.Projection{fleet})
//	defer r.Close()
//	prometheus.MustRegister(projections.NewCollector(r))
//
//	// In an HTTP handler:
//	if err := r.Ready("fleet"); errors.Is(err, projections.ErrNotReady) { /* 503 */ }
//	err = sink.View(ctx, "fleet", func(q projections.Querier) error {
//		return q.QueryRow(ctx, "SELECT label FROM "+q.Table("units")+" WHERE unit = ?", unit).Scan(&label)
//	})
//
// SQL is written once for both dialects: '?' placeholders (rebound for
// PostgreSQL), table names through Tx.Table / Querier.Table
// ("fleet_v2_units"), and Tx.Upsert for bulk inserts with ON CONFLICT.
// Migrations may have per-dialect variants ("001_init.postgres.sql").
//
// Failures: a failing batch is rolled back and retried with exponential
// backoff and jitter, one event at a time until past the failure, so the
// error (Status.LastError, an *EventError) names the position; nothing is
// ever skipped. A poison event (ErrPoison: undecodable payload) stops the
// projection (StateStopped) with an error naming its position.
//
// Readiness: a projection is not ready (Ready returns ErrNotReady) until it
// has caught up to the head of the log seen at Start; WaitReady blocks
// until then. WaitPosition blocks until a projection has applied the log up
// to a given position, such as that of an append the caller just made.
//
// Rebuild and hot swap: bumping Version builds the new version from
// position 1 into its own tables while the sink keeps serving the current
// one (Status.State is StateRebuilding, Ready is true, Serving is the old
// version). Once the new version reaches the head seen at start, Sink.Switch
// makes it current and drops the old tables in one transaction. The old
// version is not fed during the rebuild: it serves what it had.
//
// Runner.Rebuild does the same at runtime for the running version: it
// builds a new generation (see VersionOfGeneration) from position 1 into
// new tables while the current one keeps serving and following the log,
// then the projection's goroutine switches to it between two batches.
// Status.Rebuild reports its progress.
//
// Progress (Status.Progress = checkpoint/head, logged every
// WithProgressInterval while catching up) and lag (head - checkpoint) are
// in Status and in the metrics of NewCollector.
package projections
