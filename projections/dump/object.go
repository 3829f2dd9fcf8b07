package dump

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/logbook-fleet/logbook/events"
)

// objectWriter streams NDJSON lines through gzip into one blob, hashing the
// uncompressed bytes as they go. Memory use is gzip's window plus the blob
// driver's upload buffer, whatever the size of the day.
type objectWriter struct {
	kind   Kind
	key    string
	cancel context.CancelFunc
	bw     *blob.Writer
	out    countingWriter
	gz     *gzip.Writer
	sum    hash.Hash

	size                          int64
	count, first, last, undecoded uint64
	closed                        bool
}

func newObjectWriter(ctx context.Context, b *blob.Bucket, k Kind, day time.Time) (*objectWriter, error) {
	key := ObjectKey(k, day)
	// Cancelling the writer's context before Close aborts the upload: no
	// object, or the previous one, stays at key.
	wctx, cancel := context.WithCancel(ctx)
	bw, err := b.NewWriter(wctx, key, &blob.WriterOptions{
		// A .gz file to download as is, not Content-Encoding: gzip,
		// which HTTP clients and GCS transcoding would undo.
		ContentType: "application/gzip",
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("dump: create %s: %w: %w", key, ErrBucket, err)
	}
	w := &objectWriter{kind: k, key: key, cancel: cancel, bw: bw, sum: sha256.New()}
	w.out.w = bw
	// Header.ModTime stays zero, so the same lines give the same bytes.
	w.gz, _ = gzip.NewWriterLevel(&w.out, gzip.DefaultCompression)
	return w, nil
}

// write appends one line (ending in '\n') for the event at pos.
func (w *objectWriter) write(line []byte, pos uint64, undecoded bool) error {
	w.sum.Write(line)
	if _, err := w.gz.Write(line); err != nil {
		return fmt.Errorf("dump: write %s: %w: %w", w.key, ErrBucket, err)
	}
	w.size += int64(len(line))
	if w.count == 0 {
		w.first = pos
	}
	w.count++
	w.last = pos
	if undecoded {
		w.undecoded++
	}
	return nil
}

// finish flushes and closes the object; once it returns nil the object is in
// the bucket.
func (w *objectWriter) finish() error {
	defer w.cancel()
	w.closed = true
	if err := w.gz.Close(); err != nil {
		w.cancel() // so that Close aborts the upload
		_ = w.bw.Close()
		return fmt.Errorf("dump: write %s: %w: %w", w.key, ErrBucket, err)
	}
	if err := w.bw.Close(); err != nil {
		return fmt.Errorf("dump: close %s: %w: %w", w.key, ErrBucket, err)
	}
	return nil
}

// abort drops the upload. It is safe after finish.
func (w *objectWriter) abort() {
	w.cancel()
	if !w.closed {
		w.closed = true
		_ = w.bw.Close()
	}
}

// manifest describes the finished object.
func (w *objectWriter) manifest(day time.Time) Manifest {
	return Manifest{
		Format:         ManifestFormat,
		Kind:           w.kind,
		Day:            FormatDay(day),
		Object:         w.key,
		Count:          w.count,
		FirstPosition:  w.first,
		LastPosition:   w.last,
		SHA256:         hex.EncodeToString(w.sum.Sum(nil)),
		Size:           w.size,
		CompressedSize: w.out.n,
		Undecoded:      w.undecoded,
	}
}

type countingWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// readingLine is one line of the readings dump.
type readingLine struct {
	Position      uint64          `json:"position"`
	Stream        string          `json:"stream"`
	Unit          string          `json:"unit"`
	Time          string          `json:"time"`
	Type          string          `json:"type"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 *string         `json:"payload_base64,omitempty"`
	PayloadError  string          `json:"payload_error,omitempty"`
}

// auditLine is one line of the audit dump.
type auditLine struct {
	Position      uint64          `json:"position"`
	Stream        string          `json:"stream"`
	Version       uint64          `json:"version"`
	ID            string          `json:"id"`
	Time          string          `json:"time"`
	Type          string          `json:"type"`
	Principal     string          `json:"principal"`
	CorrelationID string          `json:"correlation_id"`
	CausationID   string          `json:"causation_id"`
	PrevHash      string          `json:"prev_hash"`
	Hash          string          `json:"hash"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 *string         `json:"payload_base64,omitempty"`
	PayloadError  string          `json:"payload_error,omitempty"`
}

// lineEncoder renders events as dump lines into a reused buffer.
type lineEncoder struct {
	decode  Decoder
	buf     bytes.Buffer
	enc     *json.Encoder
	payload bytes.Buffer
}

func newLineEncoder(d Decoder) *lineEncoder {
	le := &lineEncoder{decode: d}
	le.enc = json.NewEncoder(&le.buf)
	le.enc.SetEscapeHTML(false)
	return le
}

// payloadOf returns the decoded, compacted payload, or the raw bytes in
// base64 and why (empty for an unknown type).
func (le *lineEncoder) payloadOf(e events.Event) (payload json.RawMessage, raw *string, why string, err error) {
	js, derr := le.decode(e)
	if derr == nil {
		le.payload.Reset()
		cerr := json.Compact(&le.payload, js)
		if cerr == nil {
			return le.payload.Bytes(), nil, "", nil
		}
		derr = fmt.Errorf("decoder returned invalid JSON: %w", cerr)
	}
	s := base64.StdEncoding.EncodeToString(e.Data)
	if errors.Is(derr, events.ErrUnknownType) {
		return nil, &s, "", derr
	}
	return nil, &s, derr.Error(), derr
}

// line renders e; the result is valid until the next call. undecoded reports
// a payload written as base64; decodeErr is the decoder's error other than
// an unknown type, for logging.
func (le *lineEncoder) line(k Kind, e events.Event) (line []byte, undecoded bool, decodeErr error, err error) {
	payload, raw, why, derr := le.payloadOf(e)
	if derr != nil && raw != nil && why == "" {
		derr = nil // unknown type: expected, not worth a log line
	}
	t := e.Time.UTC().Format(time.RFC3339Nano)
	le.buf.Reset()
	switch k {
	case Readings:
		err = le.enc.Encode(readingLine{
			Position: e.Position, Stream: e.Stream, Unit: strings.TrimPrefix(e.Stream, ReadingsCategory+"-"), Time: t, Type: e.Type,
			Payload: payload, PayloadBase64: raw, PayloadError: why,
		})
	default:
		err = le.enc.Encode(auditLine{
			Position: e.Position, Stream: e.Stream, Version: e.Version, ID: e.ID.String(),
			Time: t, Type: e.Type, Principal: e.Metadata.Principal,
			CorrelationID: e.Metadata.CorrelationID, CausationID: e.Metadata.CausationID,
			PrevHash: e.PrevHash.String(), Hash: e.Hash.String(),
			Payload: payload, PayloadBase64: raw, PayloadError: why,
		})
	}
	if err != nil {
		return nil, false, nil, fmt.Errorf("dump: encode event at position %d: %w", e.Position, err)
	}
	return le.buf.Bytes(), raw != nil, derr, nil
}
