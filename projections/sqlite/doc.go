// Package sqlite is the embedded projection sink: one SQLite database file
// (modernc.org/sqlite, no cgo) in WAL mode with a busy timeout, one writer
// connection and a pool of readers. It registers the URL scheme "sqlite":
//
//	sqlite:///var/lib/logbook/read.db   absolute path
//	sqlite:read.db                      relative path
//	sqlite::memory:                     in memory, one connection (tests)
//
// Use it through projections.OpenSink or directly:
//
//	sink, err := sqlite.Open(ctx, "/var/lib/logbook/read.db")
//	if err != nil { return err }
//	defer sink.Close()
//	r, err := projections.Start(ctx, store, sink, ps)
//
// Durability: synchronous=NORMAL in WAL mode. A power cut may lose the last
// commits, but rows and checkpoint are lost together and the runner replays
// them, so the read model never disagrees with its checkpoint.
package sqlite
