package dump

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// ManifestFormat is the version of the manifest encoding this package writes
// and reads. Any change to the fields bumps it.
const ManifestFormat = 1

// maxManifestSize bounds what ReadManifest reads; a manifest is well under 1 KiB.
const maxManifestSize = 64 << 10

// Manifest describes one finished data object. It is written after its data
// object, so a data object without a manifest is an unfinished dump that the
// next run redoes. Manifests are JSON; see DecodeManifest for the rules a
// valid one follows.
type Manifest struct {
	// Format is ManifestFormat.
	Format int  `json:"format"`
	Kind   Kind `json:"kind"`
	// Day is the UTC day, "YYYY-MM-DD".
	Day string `json:"day"`
	// Object is the data object's key, ObjectKey(Kind, Day).
	Object string `json:"object"`
	// Count is the number of NDJSON lines (events) in the object.
	Count uint64 `json:"count"`
	// FirstPosition and LastPosition are the positions of the first and
	// last line (0 when Count is 0). Lines are in position order.
	FirstPosition uint64 `json:"first_position"`
	LastPosition  uint64 `json:"last_position"`
	// SHA256 is the hex digest of the uncompressed NDJSON.
	SHA256 string `json:"sha256"`
	// Size is the uncompressed size and CompressedSize the object's size,
	// in bytes.
	Size           int64 `json:"size"`
	CompressedSize int64 `json:"compressed_size"`
	// Undecoded counts the lines whose payload is written as
	// payload_base64 because no decoder knew the type or decoding failed.
	Undecoded uint64 `json:"undecoded"`
	// Complete is false for a day dumped WithForce before it was complete:
	// later events of the day may be missing, and a later run without
	// WithForce redoes the day once it is complete.
	Complete bool `json:"complete"`
	// Tolerance is the clock skew allowance the scan used (a Go duration).
	Tolerance string `json:"tolerance"`
	// Scan says which part of the log was read.
	Scan Scan `json:"scan"`
	// Created is when the manifest was written (the Dumper's clock).
	Created time.Time `json:"created"`
}

// Scan records the part of the log read for a day; it is the same in both
// kinds' manifests of a day.
type Scan struct {
	// From is the first position read; To is the last (From-1 when the
	// scan read nothing).
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
	// Next is where the next day's scan starts: the first position read
	// whose event is of a later day, or To+1. No event of a later day is
	// before Next (under the ordering assumption; see the package doc).
	Next uint64 `json:"next"`
	// HeadPosition and HeadTime describe the log's last event when the run
	// started (zero for an empty log).
	HeadPosition uint64    `json:"head_position"`
	HeadTime     time.Time `json:"head_time"`
	// OutOfOrder counts the events read whose time is more than Tolerance
	// before an event committed earlier: they break the ordering
	// assumption, and such an event of an earlier day than the one dumped
	// is in no dump.
	OutOfOrder uint64 `json:"out_of_order"`
}

// EncodeManifest returns m as indented JSON with a final newline.
func EncodeManifest(m Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("dump: encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// DecodeManifest decodes and validates a manifest. Unknown fields, trailing
// data, another Format and any inconsistency (see Validate) give an error
// wrapping ErrInvalidManifest.
func DecodeManifest(data []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Manifest{}, fmt.Errorf("%w: data after the JSON object", ErrInvalidManifest)
	}
	m.Created = m.Created.UTC()
	m.Scan.HeadTime = m.Scan.HeadTime.UTC()
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// Validate checks m's internal consistency; the error wraps ErrInvalidManifest
// and joins every problem found.
func (m Manifest) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if m.Format != ManifestFormat {
		bad("format %d, want %d", m.Format, ManifestFormat)
	}
	if m.Kind != Readings && m.Kind != Audit {
		bad("kind %q, want %q or %q", m.Kind, Readings, Audit)
	}
	day, err := time.Parse(dayLayout, m.Day)
	if err != nil {
		bad("day %q: %v", m.Day, err)
	} else if want := ObjectKey(m.Kind, day); m.Object != want {
		bad("object %q, want %q", m.Object, want)
	}
	if sum, err := hex.DecodeString(m.SHA256); err != nil || len(sum) != 32 || hex.EncodeToString(sum) != m.SHA256 {
		bad("sha256 %q is not 64 lowercase hex digits", m.SHA256)
	}
	if m.Size < 0 || m.CompressedSize < 0 {
		bad("negative size")
	}
	if m.Count == 0 {
		if m.FirstPosition != 0 || m.LastPosition != 0 || m.Size != 0 {
			bad("no events but positions %d-%d and size %d", m.FirstPosition, m.LastPosition, m.Size)
		}
	} else {
		if m.FirstPosition == 0 || m.FirstPosition > m.LastPosition || m.Count-1 > m.LastPosition-m.FirstPosition {
			bad("%d events cannot lie in positions %d-%d", m.Count, m.FirstPosition, m.LastPosition)
		}
		if m.Size < 2*int64(min(m.Count, 1<<40)) {
			bad("%d events cannot fit in %d bytes", m.Count, m.Size)
		}
		if m.FirstPosition < m.Scan.From || m.LastPosition > m.Scan.To {
			bad("positions %d-%d lie outside the scan %d-%d", m.FirstPosition, m.LastPosition, m.Scan.From, m.Scan.To)
		}
	}
	if m.Undecoded > m.Count {
		bad("%d undecoded of %d events", m.Undecoded, m.Count)
	}
	if tol, err := time.ParseDuration(m.Tolerance); err != nil || tol < 0 {
		bad("tolerance %q is not a non-negative duration", m.Tolerance)
	}
	s := m.Scan
	if s.From == 0 || s.To < s.From-1 || s.Next < s.From || s.Next > s.To+1 {
		bad("scan from %d to %d, next %d: want 1 <= from <= next <= to+1", s.From, s.To, s.Next)
	}
	if s.OutOfOrder > s.To-min(s.To, s.From-1) {
		bad("%d out-of-order events in a scan of positions %d-%d", s.OutOfOrder, s.From, s.To)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w %s: %w", ErrInvalidManifest, m.Object, errors.Join(errs...))
	}
	return nil
}

// readManifest returns the manifest at key, ok false when there is none.
func readManifest(ctx context.Context, b *blob.Bucket, key string) (m Manifest, ok bool, err error) {
	r, err := b.NewReader(ctx, key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return Manifest{}, false, nil
	}
	if err != nil {
		return Manifest{}, false, fmt.Errorf("dump: read %s: %w: %w", key, ErrBucket, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxManifestSize+1))
	if err != nil {
		return Manifest{}, false, fmt.Errorf("dump: read %s: %w: %w", key, ErrBucket, err)
	}
	if len(data) > maxManifestSize {
		return Manifest{}, false, fmt.Errorf("dump: %s: %w: larger than %d bytes", key, ErrInvalidManifest, maxManifestSize)
	}
	m, err = DecodeManifest(data)
	if err != nil {
		return Manifest{}, false, fmt.Errorf("dump: %s: %w", key, err)
	}
	if m.Object != ObjectKey(m.Kind, mustDay(m.Day)) || key != ManifestKey(m.Kind, mustDay(m.Day)) {
		return Manifest{}, false, fmt.Errorf("dump: %s: %w: it describes %s", key, ErrInvalidManifest, m.Object)
	}
	return m, true, nil
}

// writeManifest writes m to its key.
func writeManifest(ctx context.Context, b *blob.Bucket, m Manifest) error {
	data, err := EncodeManifest(m)
	if err != nil {
		return err
	}
	key := ManifestKey(m.Kind, mustDay(m.Day))
	opts := &blob.WriterOptions{ContentType: "application/json"}
	if err := b.WriteAll(ctx, key, data, opts); err != nil {
		return fmt.Errorf("dump: write %s: %w: %w", key, ErrBucket, err)
	}
	return nil
}

// mustDay parses a day of a validated manifest.
func mustDay(s string) time.Time {
	d, err := time.Parse(dayLayout, s)
	if err != nil {
		panic(fmt.Sprintf("dump: day %q of a validated manifest: %v", s, err))
	}
	return d
}
