// Package dump writes daily dumps of the event log to blob storage: one UTC
// day of readings and one of audit events, each as gzip-compressed NDJSON,
// through gocloud.dev/blob (cloud-lada's dumper, fed by the log instead of a
// database).
//
// # Usage
//
//	d, err := dump.Open(ctx, store, "file:///var/lib/logbook/dumps",
//		dump.WithRegistry(registry), dump.WithLogger(logger))
//	if err != nil {
//		return err // wraps dump.ErrBucket for a bad URL or unreachable bucket
//	}
//	defer d.Close()
//
//	// A daily cron job: dump every day that has ended and is not dumped yet.
//	results, err := d.RunDue(ctx)
//
//	// One day, e.g. from a --dump-date flag; a no-op if already dumped.
//	day, err := dump.ParseDay("2026-11-22")
//	res, err := d.Run(ctx, day) // *IncompleteError (ErrIncomplete) if the day is not over
//
// # Object layout
//
// For the UTC day 2026-11-22 a run writes, in this order:
//
//	readings/2026/11/22.ndjson.gz       events of streams "readings-<unit>"
//	audit/2026/11/22.ndjson.gz          every other event
//	readings/2026/11/22.manifest.json   count, first/last position, sha256, sizes, scan range
//	audit/2026/11/22.manifest.json      the same for audit; written last
//
// Data objects are written with Content-Type application/gzip (not
// Content-Encoding: gzip, which HTTP clients and GCS would transparently
// undo). Each holds one JSON object per line, in position order; a day with no
// events gets empty objects. A readings line:
//
//	{"position":812,"stream":"readings-ship1","unit":"ship1","time":"2026-11-22T18:25:43.511Z",
//	 "type":"lada.v1.Reading","payload":{"sensor":"speed","value":55.5}}
//
// An audit line:
//
//	{"position":813,"stream":"unit-ship1","version":4,"id":"0193…","time":"2026-11-22T18:25:44Z",
//	 "type":"logbook.v1.UnitLabelsSet","principal":"alice","correlation_id":"…","causation_id":"…",
//	 "prev_hash":"…","hash":"…","payload":{"labels":{"site":"north"}}}
//
// The payload is rendered by the Decoder (WithRegistry: protojson with proto
// field names). When the decoder does not know the type, the line has
// "payload_base64" (the raw protobuf bytes, standard base64) instead of
// "payload"; when decoding fails it also has "payload_error". The manifest
// counts such lines as "undecoded". Times are RFC 3339 in UTC with up to
// nanoseconds.
//
// # Completeness and idempotency
//
// A day is complete when it has ended by the Dumper's clock and the log's last
// event is stamped at least Tolerance (default 10 minutes) after the day's
// end. Run refuses an incomplete day with an *IncompleteError unless
// WithForce; a forced dump's manifests say "complete": false and the next
// run without WithForce redoes the day once it is complete. A quiet log with
// no event after a day does not complete that day: the dump follows once
// the next event arrives.
//
// Blob storage has no rename, so the manifests are the commit record: a run
// deletes stale manifests of the day, streams both data objects, and writes
// the manifests last. A day counts as dumped only when both manifests are
// there, complete, and their objects have the recorded sizes; data objects
// without manifests (a run that failed or was killed) are overwritten by the
// next run. Re-running a dumped day reads two manifests and writes nothing.
// Verify re-reads a day and checks it against its manifests.
//
// # Finding a day's events
//
// Positions are in commit order; times are stamped by appenders and are only
// roughly increasing. The dumps rely on one assumption, with Tolerance as the
// allowed clock skew: no event is stamped more than Tolerance before an event
// committed earlier. Then:
//
//   - a scan for a day stops at the first event stamped Tolerance or more
//     after the day's end: nothing committed later can be of that day;
//   - the next day's scan starts at the first position of that scan whose
//     event belongs to a later day (the manifest's scan.next, the cursor);
//   - without a previous day's manifest, a binary search over positions finds
//     a position stamped more than Tolerance before the day, about log2(head)
//     single-event reads.
//
// Events that break the assumption are counted in the manifest's
// scan.out_of_order and logged. One stamped in an earlier day than the scan's
// is in no dump: a unit that replays hours of spooled readings with their
// original times into the log breaks the assumption; give such events a
// commit-time stamp (keeping the original time in the payload) or raise the
// tolerance.
//
// A scan streams each line through gzip into the bucket's writer, so memory
// does not grow with the size of the day (the mem:// driver keeps objects in
// memory by nature; file://, s3:// and gs:// do not).
//
// # Drivers
//
// This package links gocloud.dev's fileblob (file://) and memblob (mem://).
// The cloud drivers are big (with gocloud.dev v0.47.0, s3blob adds about 20
// modules and 14 MB to a binary, gcsblob about 30 modules and 34 MB), so the
// binary that wants them links them, by URL scheme, with a blank import in
// cmd/:
//
//	go get gocloud.dev/blob/s3blob@v0.47.0 gocloud.dev/blob/gcsblob@v0.47.0
//
//	import (
//		_ "gocloud.dev/blob/gcsblob" // gs://bucket
//		_ "gocloud.dev/blob/s3blob"  // s3://bucket?region=eu-west-1
//	)
//
// Credentials come from the usual AWS and Google environment; see
// https://gocloud.dev/howto/blob/. With file://, fileblob writes through
// temporary files in os.TempDir and renames them: on another filesystem than
// the bucket add ?no_tmp_dir=1 to the URL.
package dump
