package dump

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
	// The drivers every build has: file:// for a directory, mem:// for tests.
	// s3blob and gcsblob are left to cmd/ (see the package doc).
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob"

	"github.com/logbook-fleet/logbook/events"
)

// DefaultTolerance is the clock skew allowance: how much earlier than an
// event committed before it an event may be stamped.
const DefaultTolerance = 10 * time.Minute

// progressEvery is how many events a scan reads between progress log lines.
const progressEvery = 100_000

// Dumper writes daily dumps of one event log to one bucket. Its methods are
// safe for concurrent use, but two runs for the same day (in one process or
// several) race: they write the same content, so the race is benign, yet
// it is wasted work; schedule one job.
type Dumper struct {
	store  events.Store
	bucket *blob.Bucket
	owned  bool // Close closes bucket
	cfg    config

	closeOnce sync.Once
	closeErr  error
}

// Result describes a day handled by Run or RunDue.
type Result struct {
	// Day is the UTC midnight starting the day.
	Day time.Time
	// Skipped is true when the day was already dumped and nothing was
	// written.
	Skipped bool
	// Readings and Audit are the day's manifests.
	Readings, Audit Manifest
}

// Option configures a Dumper.
type Option func(*config) error

type config struct {
	decoder   Decoder
	logger    *slog.Logger
	tolerance time.Duration
	force     bool
	now       func() time.Time
	// afterData runs after both data objects are in the bucket and before
	// any manifest is written; tests make it fail to simulate a crash.
	afterData func(day time.Time) error
}

func defaultConfig() config {
	return config{
		decoder:   rawDecoder,
		logger:    slog.Default(),
		tolerance: DefaultTolerance,
		now:       time.Now,
	}
}

// WithDecoder renders payloads as JSON with d. Without a decoder (or a
// registry) every payload is written as payload_base64.
func WithDecoder(d Decoder) Option {
	return func(c *config) error {
		if d == nil {
			return errors.New("dump: WithDecoder: nil decoder")
		}
		c.decoder = d
		return nil
	}
}

// WithRegistry renders payloads of the types in reg with protojson; see
// RegistryDecoder.
func WithRegistry(reg *events.Registry) Option {
	return func(c *config) error {
		if reg == nil {
			return errors.New("dump: WithRegistry: nil registry")
		}
		c.decoder = RegistryDecoder(reg)
		return nil
	}
}

// WithLogger sets the logger for progress and warnings (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("dump: WithLogger: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithTolerance sets the clock skew allowance (default DefaultTolerance,
// at most 12 hours). A day is complete once the log's head is stamped at
// least this long after the day's end, and a scan reads on until an event
// stamped this long after the day's end. Zero trusts event times to follow
// commit order exactly.
func WithTolerance(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 || d > 12*time.Hour {
			return fmt.Errorf("dump: WithTolerance(%s): want 0 to 12h", d)
		}
		c.tolerance = d
		return nil
	}
}

// WithForce dumps days that are not complete yet (their manifests say
// "complete": false), e.g. today's so far. A later run without WithForce
// redoes such a day once it is complete. RunDue with WithForce goes on up to
// the day of the log's last event.
func WithForce() Option {
	return func(c *config) error {
		c.force = true
		return nil
	}
}

// WithClock sets the clock that says whether a day has ended and stamps
// manifests (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("dump: WithClock: nil clock")
		}
		c.now = now
		return nil
	}
}

func buildConfig(opts []Option) (config, error) {
	cfg := defaultConfig()
	var errs []error
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			errs = append(errs, err)
		}
	}
	return cfg, errors.Join(errs...)
}

// Open opens the bucket at bucketURL ("file:///var/lib/logbook/dumps",
// "mem://", or s3:// and gs:// when cmd/ links those drivers) and checks that
// it can be listed. Errors wrap ErrBucket: an unknown scheme, a malformed
// URL, a missing directory or bucket, missing credentials. Close closes the
// bucket.
func Open(ctx context.Context, store events.Store, bucketURL string, opts ...Option) (*Dumper, error) {
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("dump: Open: nil store")
	}
	shown := redact(bucketURL)
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		return nil, fmt.Errorf("dump: open bucket %s: %w: %w", shown, ErrBucket, hideURL(err, bucketURL, shown))
	}
	ok, err := b.IsAccessible(ctx)
	if err == nil && !ok {
		err = errors.New("bucket does not exist")
	}
	if err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("dump: bucket %s is unreachable: %w: %w", shown, ErrBucket, hideURL(err, bucketURL, shown))
	}
	return &Dumper{store: store, bucket: b, owned: true, cfg: cfg}, nil
}

// New returns a Dumper writing to an open bucket; the caller keeps
// ownership of bucket and closes it after the Dumper is done.
func New(store events.Store, bucket *blob.Bucket, opts ...Option) (*Dumper, error) {
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	if store == nil || bucket == nil {
		return nil, errors.New("dump: New: nil store or bucket")
	}
	return &Dumper{store: store, bucket: bucket, cfg: cfg}, nil
}

// Close closes the bucket if Open opened it. It is idempotent; the store is
// the caller's.
func (d *Dumper) Close() error {
	d.closeOnce.Do(func() {
		if d.owned {
			d.closeErr = d.bucket.Close()
		}
	})
	return d.closeErr
}

// redact hides a password in a URL for error messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// hideURL keeps a driver's error, which may quote the URL with its
// password, but shows it with the URL redacted.
func hideURL(err error, raw, shown string) error {
	if raw == shown {
		return err
	}
	return &redactedError{err: err, raw: raw, shown: shown}
}

type redactedError struct {
	err        error
	raw, shown string
}

func (e *redactedError) Error() string { return strings.ReplaceAll(e.err.Error(), e.raw, e.shown) }
func (e *redactedError) Unwrap() error { return e.err }

// Run dumps the UTC day containing day. When both of the day's manifests are
// there, complete, and their objects have the recorded sizes, it writes
// nothing and returns Skipped. A day that is not complete gives an
// *IncompleteError (ErrIncomplete) unless WithForce. The scan starts where
// the previous day's manifest says it ended, or, without one, at a position
// found by binary search over event times.
//
// Run writes both data objects first and the manifests last; a run that
// fails or is cancelled leaves no manifest for the day (it deletes stale
// ones before writing data), so the next run redoes the day.
func (d *Dumper) Run(ctx context.Context, day time.Time) (Result, error) {
	return d.run(ctx, Day(day), 0)
}

// run dumps day starting the scan at cursor (0: look it up).
func (d *Dumper) run(ctx context.Context, day time.Time, cursor uint64) (Result, error) {
	log := d.cfg.logger.With("day", FormatDay(day))
	res := Result{Day: day}
	existing, done, err := d.dumped(ctx, day, log)
	if err != nil {
		return res, err
	}
	if done {
		res.Skipped, res.Readings, res.Audit = true, existing[Readings], existing[Audit]
		log.Debug("dump: day already dumped", "readings", res.Readings.Count, "audit", res.Audit.Count)
		return res, nil
	}

	head, headTime, err := d.head(ctx)
	if err != nil {
		return res, err
	}
	now := d.cfg.now().UTC()
	end := day.AddDate(0, 0, 1)
	ended := !now.Before(end)
	if !(ended && head.Position > 0 && !headTime.Before(end.Add(d.cfg.tolerance))) && !d.cfg.force {
		return res, &IncompleteError{Day: day, HeadPosition: head.Position, HeadTime: headTime, Now: now, Tolerance: d.cfg.tolerance}
	}
	if cursor == 0 {
		if cursor, err = d.startPosition(ctx, day, head); err != nil {
			return res, err
		}
	}

	// A manifest from an earlier forced or partial run must not describe
	// the objects about to be replaced.
	for k, m := range existing {
		if err := d.bucket.Delete(ctx, ManifestKey(k, day)); err != nil && !isNotFound(err) {
			return res, fmt.Errorf("dump: delete stale manifest %s: %w: %w", ManifestKey(k, day), ErrBucket, err)
		}
		log.Info("dump: redoing day", "kind", k, "previous_complete", m.Complete)
	}

	log.Info("dump: start", "from", cursor, "head", head.Position, "head_time", headTime)
	started := time.Now()
	ms, sawEnd, err := d.scan(ctx, day, cursor, head, headTime, log)
	if err != nil {
		return res, err
	}
	if d.cfg.afterData != nil {
		if err := d.cfg.afterData(day); err != nil {
			return res, err
		}
	}
	for _, k := range kinds {
		m := ms[k]
		m.Complete = sawEnd && ended
		m.Created = now
		if err := writeManifest(ctx, d.bucket, m); err != nil {
			return res, err
		}
		ms[k] = m
	}
	res.Readings, res.Audit = ms[Readings], ms[Audit]
	log.Info("dump: done", "readings", res.Readings.Count, "audit", res.Audit.Count,
		"complete", res.Audit.Complete, "scanned", res.Audit.Scan.To+1-res.Audit.Scan.From,
		"out_of_order", res.Audit.Scan.OutOfOrder, "elapsed", time.Since(started).Round(time.Millisecond))
	if res.Audit.Scan.OutOfOrder > 0 {
		log.Warn("dump: events out of time order beyond the tolerance; an event of an earlier day seen here is in no dump",
			"count", res.Audit.Scan.OutOfOrder, "tolerance", d.cfg.tolerance)
	}
	return res, nil
}

// dumped reads the day's manifests. done is true when both are there and
// complete and both objects have the recorded size.
func (d *Dumper) dumped(ctx context.Context, day time.Time, log *slog.Logger) (map[Kind]Manifest, bool, error) {
	found := make(map[Kind]Manifest, len(kinds))
	for _, k := range kinds {
		m, ok, err := readManifest(ctx, d.bucket, ManifestKey(k, day))
		if err != nil {
			return nil, false, err
		}
		if ok {
			found[k] = m
		}
	}
	if len(found) != len(kinds) {
		return found, false, nil
	}
	for _, m := range found {
		if !m.Complete {
			return found, false, nil
		}
		attrs, err := d.bucket.Attributes(ctx, m.Object)
		if isNotFound(err) {
			log.Warn("dump: manifest without its object", "object", m.Object)
			return found, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("dump: stat %s: %w: %w", m.Object, ErrBucket, err)
		}
		if attrs.Size != m.CompressedSize {
			log.Warn("dump: object size differs from its manifest", "object", m.Object, "size", attrs.Size, "manifest", m.CompressedSize)
			return found, false, nil
		}
	}
	return found, true, nil
}

// RunDue dumps every complete day not yet dumped, oldest first: from the day
// after the latest day with an audit manifest (or that day itself if it was
// forced before it was complete), or else from the day of the log's first
// event, up to the last complete day (WithForce: up to the day of the log's
// last event, or today if that is earlier). It does not fill gaps before the latest
// dumped day; Run does. It returns the days it handled and stops at the
// first error, which leaves the days before it dumped.
func (d *Dumper) RunDue(ctx context.Context) ([]Result, error) {
	day, cursor, ok, err := d.firstDue(ctx)
	if err != nil || !ok {
		return nil, err
	}
	_, headTime, err := d.head(ctx)
	if err != nil {
		return nil, err
	}
	// WithForce goes on up to the day of the last event, but not past
	// today: a clock gone wrong on one appender must not make thousands of
	// empty days.
	lastForced := Day(headTime)
	if today := Day(d.cfg.now()); today.Before(lastForced) {
		lastForced = today
	}
	var results []Result
	for {
		res, err := d.run(ctx, day, cursor)
		if errors.Is(err, ErrIncomplete) {
			d.cfg.logger.Info("dump: up to date", "next_day", FormatDay(day), "dumped", len(results))
			return results, nil
		}
		if err != nil {
			return results, err
		}
		results = append(results, res)
		cursor = res.Audit.Scan.Next
		if d.cfg.force && !day.Before(lastForced) {
			return results, nil
		}
		day = day.AddDate(0, 0, 1)
	}
}

// firstDue finds the first day RunDue handles and where its scan starts (0:
// look it up); ok is false for an empty log with nothing dumped.
func (d *Dumper) firstDue(ctx context.Context) (day time.Time, cursor uint64, ok bool, err error) {
	latest, found, err := latestManifestDay(ctx, d.bucket, Audit)
	if err != nil {
		return time.Time{}, 0, false, err
	}
	if found {
		m, present, err := readManifest(ctx, d.bucket, ManifestKey(Audit, latest))
		if err != nil {
			return time.Time{}, 0, false, err
		}
		if present && m.Complete {
			return latest.AddDate(0, 0, 1), m.Scan.Next, true, nil
		}
		return latest, 0, true, nil
	}
	head, err := d.store.Head(ctx)
	if err != nil {
		return time.Time{}, 0, false, fmt.Errorf("dump: read the log's head: %w", err)
	}
	if head.Position == 0 {
		d.cfg.logger.Info("dump: the log is empty, nothing to dump")
		return time.Time{}, 0, false, nil
	}
	first, err := d.timeAt(ctx, 1)
	if err != nil {
		return time.Time{}, 0, false, err
	}
	return Day(first.Add(-d.cfg.tolerance)), 1, true, nil
}

func isNotFound(err error) bool {
	return err != nil && gcerrors.Code(err) == gcerrors.NotFound
}
