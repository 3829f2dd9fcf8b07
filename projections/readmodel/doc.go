// Package readmodel holds Logbook's SQL read models: projections that fold
// the event log into tables on any projections sink (SQLite or
// PostgreSQL), and typed query functions the API layer calls.
//
//	model      constructor   tables (per version)            queries
//	fleet      Fleet()       units, labels                   ListUnits, GetUnit
//	processes  Processes()   processes                       ProcessesOfUnit, GetProcess
//	commands   Commands()    commands                        ListCommands, GetCommand
//	releases   Releases()    releases, channels, promotions  ListReleases, GetRelease, ListChannels, GetChannel, PromotionHistory
//	audit      Audit()       events                          AuditTimeline
//	readings   Readings()    readings, latest                LatestReadings, LatestPerSensor, ReadingBuckets
//
// Usage:
//
//	sink, err := projections.OpenSink(ctx, "sqlite:///var/lib/logbook/read.db") // import _ ".../projections/sinks"
//	r, err := projections.Start(ctx, store, sink, readmodel.All())
//	defer r.Close()
//	rd := readmodel.Guard(r, sink) // ErrNotReady (503) until each model's first catch-up
//	units, err := readmodel.ListUnits(ctx, rd, readmodel.UnitQuery{Selector: "site=north", Limit: 50})
//	buckets, err := readmodel.ReadingBuckets(ctx, rd, readmodel.BucketQuery{
//		Unit: "ship1", Sensor: "speed", From: from, To: to, Width: 5 * time.Minute})
//
// Readiness: query functions read through a Reader. A projections.Sink
// serves whatever version is current, even while a restarted runner
// catches up; before any version was ever current they return an error
// wrapping projections.ErrNotReady. Guard(runner, sink) also answers
// ErrNotReady while the runner says the model is not ready.
//
// Writes: handlers decode payloads with a registry of the logbook.v1
// events (an undecodable payload of a handled type is projections.Poison)
// and write each batch with few statements: the rows a batch touches are
// loaded once, folded in memory and written back with one multi-row upsert
// per table; audit entries and readings are bulk inserts with ON CONFLICT
// DO NOTHING on their natural keys (position; unit, sensor, time). Each
// folded row records the position of the last event applied to it and
// skips events at or below it, so a replayed batch changes nothing.
//
// Storage: times are BIGINT Unix nanoseconds (0 for none), maps and lists
// JSON text, statuses lower-case words ("running", "succeeded"). Reading
// buckets are computed in SQL as time_ns / width (integer division, the
// same on both dialects), aligned to the Unix epoch.
//
// Paging: lists take a Limit (DefaultLimit when 0, at most MaxLimit) and a
// cursor: After (the last name) for units, Before (the last position) for
// newest-first lists.
package readmodel
