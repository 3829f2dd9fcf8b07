package dump

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// maxLine bounds one NDJSON line when Verify reads a dump back.
const maxLine = 64 << 20

// Manifest returns the manifest of kind k for the UTC day containing day, or
// an error wrapping ErrNotDumped.
func (d *Dumper) Manifest(ctx context.Context, k Kind, day time.Time) (Manifest, error) {
	key := ManifestKey(k, day)
	m, ok, err := readManifest(ctx, d.bucket, key)
	if err != nil {
		return Manifest{}, err
	}
	if !ok {
		return Manifest{}, fmt.Errorf("dump: %s: %w", key, ErrNotDumped)
	}
	return m, nil
}

// Verify reads both dumps of the UTC day containing day back and checks them
// against their manifests: compressed and uncompressed size, SHA-256, line
// count, first and last position, positions increasing, every time within
// the day. It streams; memory does not grow with the day. A missing manifest
// gives ErrNotDumped, a difference ErrMismatch.
func (d *Dumper) Verify(ctx context.Context, day time.Time) error {
	day = Day(day)
	var errs []error
	for _, k := range kinds {
		m, err := d.Manifest(ctx, k, day)
		if err != nil {
			return err
		}
		if err := d.verifyObject(ctx, m, day); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *Dumper) verifyObject(ctx context.Context, m Manifest, day time.Time) error {
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("dump: %s: %w: %s", m.Object, ErrMismatch, fmt.Sprintf(format, args...))
	}
	r, err := d.bucket.NewReader(ctx, m.Object, nil)
	if isNotFound(err) {
		return mismatch("object missing")
	}
	if err != nil {
		return fmt.Errorf("dump: read %s: %w: %w", m.Object, ErrBucket, err)
	}
	defer r.Close()
	if r.Size() != m.CompressedSize {
		return mismatch("%d bytes, manifest says %d", r.Size(), m.CompressedSize)
	}
	gz, err := gzip.NewReader(r)
	if err != nil {
		return mismatch("not gzip: %v", err)
	}
	sum := sha256.New()
	lines := bufio.NewReaderSize(io.TeeReader(gz, sum), 64<<10)
	end := day.AddDate(0, 0, 1)
	var (
		count, first, last uint64
		size               int64
		buf                []byte
	)
	for {
		buf, err = readLine(lines, buf[:0])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return mismatch("line %d: %v", count+1, err)
		}
		size += int64(len(buf))
		var l struct {
			Position uint64    `json:"position"`
			Time     time.Time `json:"time"`
		}
		if err := json.Unmarshal(buf, &l); err != nil {
			return mismatch("line %d: %v", count+1, err)
		}
		if l.Position <= last {
			return mismatch("line %d: position %d after %d", count+1, l.Position, last)
		}
		if l.Time.Before(day) || !l.Time.Before(end) {
			return mismatch("line %d: time %s outside the day", count+1, l.Time.Format(time.RFC3339Nano))
		}
		if count == 0 {
			first = l.Position
		}
		last = l.Position
		count++
	}
	switch got := hex.EncodeToString(sum.Sum(nil)); {
	case count != m.Count:
		return mismatch("%d lines, manifest says %d", count, m.Count)
	case first != m.FirstPosition || last != m.LastPosition:
		return mismatch("positions %d-%d, manifest says %d-%d", first, last, m.FirstPosition, m.LastPosition)
	case size != m.Size:
		return mismatch("%d bytes uncompressed, manifest says %d", size, m.Size)
	case got != m.SHA256:
		return mismatch("sha256 %s, manifest says %s", got, m.SHA256)
	}
	return nil
}

// readLine appends the next line, newline included, to buf. It returns io.EOF
// at the end of a stream ending in a newline.
func readLine(r *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxLine {
			return buf, fmt.Errorf("longer than %d bytes", maxLine)
		}
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return buf, errors.New("no newline at the end")
		default:
			return buf, err
		}
	}
}
