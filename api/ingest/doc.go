// Package ingest is Logbook's readings ingest (cloud-lada's ingestor) and
// its statistics endpoints, as an http.Handler the server mounts.
//
//	svc, err := ingest.New(ingest.Config{
//		Store:     store,                                  // events.Store
//		Readings:  readmodel.Guard(runner, sink),          // 503 until ready
//		Authorize: tokens.Authorizer(roleFor),             // errors wrap ErrUnauthenticated / ErrForbidden
//		Logger:    logger,
//	})
//	if err != nil { ... }
//	mux.Handle("/ingest", svc.Handler())
//	mux.Handle("/api/statistics/", svc.Handler())
//	registry.MustRegister(svc) // logbook_ingest_* metrics
//
// # Upload
//
// POST /ingest?unit=<unit> (or the unit in a Logbook-Unit header) with a
// body of NDJSON, one reading per line:
//
//	{"sensor":"temp","value":21.5,"timestamp":"2026-11-22T10:00:00Z"}
//	{"sensor":"temp","value":21.7,"timestamp":1795341660}
//
// The body may be gzip-compressed (Content-Encoding: gzip). Unit names
// follow actors/unit.ValidateName. Each line is one JSON object: "sensor"
// a string of 1 to MaxSensorLen bytes without control characters; "value"
// a JSON number that fits a float64; "timestamp" an RFC 3339 string (any
// offset, up to nanoseconds) or a JSON integer of Unix seconds (below
// 1e11) or milliseconds (from 1e11 on), between 1970 and 2262. Keys match
// case-insensitively, unknown keys are ignored and a repeated key's last
// value wins, as with encoding/json. Blank lines are skipped but counted.
//
// The body is read one line at a time: memory per upload is bounded by
// MaxLineBytes, one chunk being filled and AppendsInFlight chunks being
// appended, whatever the body's size. A longer line is reported invalid
// and skipped.
//
// Valid readings are stored, invalid lines are not. The answer is a JSON
// Result: 200 with the counts when every line was valid; 400 listing each
// invalid line by number with what is wrong (up to MaxReportedErrors) when
// some were not, the valid ones stored all the same; 401 or 403 when
// Authorize refuses (before the body is read); 400 for a missing or
// invalid unit; 413 past MaxBodyBytes; 500 or 503 when the log fails, with
// the counts stored so far.
//
// # Storage and retries
//
// Readings go to the stream "readings-<unit>" in chunks of 256 to 8192
// (about 1,300 on average), each one ReadingsBatch event appended on its
// own: a chunk is in the log whole or not at all, also when the client
// goes away mid-upload (the chunk being filled then is dropped). Chunk
// boundaries depend on the readings, not on their position in the body
// (content-defined chunking, see chunk.go), and a chunk's event id is a
// digest of its unit and content. So a retried upload stores nothing
// twice: the log returns the original result for a chunk it already holds
// (counted in Result.Duplicates), and a retry that resumes elsewhere in
// the backlog realigns with the first upload's chunks after a few hundred
// readings; the readings before that, stored again in the log, are
// ignored by the read model, which stores each (unit, sensor, time) once.
// One event per chunk rather than per reading is what lets ingest reach
// the log's throughput: the per-event costs (digest, hash chain, index
// entry, id look-up) are paid once per chunk.
//
// # Statistics
//
// GET /api/statistics/latest[?unit=U][&by=sensor] and GET
// /api/statistics/buckets?from=T&to=T[&unit=U][&sensor=S][&bucket=D] answer
// from the readings read model (projections/readmodel.Readings): 503 with
// a Retry-After header while it is not ready, 400 with what to fix for bad
// parameters. See LatestHandler and BucketsHandler.
package ingest
