package ingest

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/events"
)

// Result is the JSON body of every answer to an upload that got past
// authentication and the unit check.
type Result struct {
	Unit string `json:"unit"`
	// Lines is how many lines of the body were read (blank ones too).
	Lines int `json:"lines"`
	// Accepted readings are in the log: stored by this upload or found
	// there already (Duplicates of them).
	Accepted int64 `json:"accepted"`
	// Duplicates are accepted readings that an earlier upload of the
	// same chunk had already stored: a retry.
	Duplicates int64 `json:"duplicates"`
	// Invalid lines were not stored; Errors says why, for the first
	// MaxReportedErrors of them.
	Invalid         int64       `json:"invalid"`
	Errors          []LineError `json:"errors,omitempty"`
	ErrorsTruncated bool        `json:"errors_truncated,omitempty"`
	// Error says why the upload stopped early, when it did.
	Error string `json:"error,omitempty"`
}

// LineError is one invalid line of an upload.
type LineError struct {
	// Line is the 1-based line number in the (decompressed) body.
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// UnitOf returns the unit an upload names: the query parameter "unit", or
// else the UnitHeader header. It does not validate the name.
func UnitOf(r *http.Request) string {
	if u := r.URL.Query().Get("unit"); u != "" {
		return u
	}
	return r.Header.Get(UnitHeader)
}

// IngestHandler returns the handler of POST PathIngest; see the package
// documentation for the protocol.
func (s *Service) IngestHandler() http.Handler {
	return http.HandlerFunc(s.serveIngest)
}

const routeIngest = "ingest"

func (s *Service) serveIngest(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	principal, ok := s.authorize(w, r, routeIngest)
	if !ok {
		return
	}
	name := UnitOf(r)
	if q, h := r.URL.Query().Get("unit"), r.Header.Get(UnitHeader); q != "" && h != "" && q != h {
		s.replyError(w, routeIngest, http.StatusBadRequest, fmt.Sprintf("the unit parameter %q and the %s header %q disagree", q, UnitHeader, h))
		return
	}
	if name == "" {
		s.replyError(w, routeIngest, http.StatusBadRequest, "name the unit: POST "+PathIngest+"?unit=<unit> or a "+UnitHeader+" header")
		return
	}
	if err := unit.ValidateName(name); err != nil {
		s.replyError(w, routeIngest, http.StatusBadRequest, "unit: "+err.Error())
		return
	}
	var body io.Reader = r.Body
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			s.replyError(w, routeIngest, http.StatusBadRequest, "gzip body: "+err.Error())
			return
		}
		defer zr.Close()
		body = zr
	default:
		s.replyError(w, routeIngest, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Encoding %q: send gzip or no encoding", enc))
		return
	}
	if s.cfg.MaxBodyBytes >= 0 {
		body = newLimitReader(body, s.cfg.MaxBodyBytes)
	}

	up := s.newUpload(r.Context(), name, events.Metadata{
		Principal:     principal,
		CorrelationID: r.Header.Get("X-Request-Id"),
	})
	res, readErr := up.run(body)

	code := http.StatusOK
	var tooLarge *bodyTooLargeError
	switch {
	case up.appendErr != nil:
		code = http.StatusInternalServerError
		if errors.Is(up.appendErr, events.ErrClosed) {
			code = http.StatusServiceUnavailable
		}
		res.Error = fmt.Sprintf("storing readings failed after line %d: %v; readings accepted so far are stored, retry the upload", res.Lines, up.appendErr)
	case errors.As(readErr, &tooLarge):
		code = http.StatusRequestEntityTooLarge
		res.Error = fmt.Sprintf("%v; the readings of the lines before were stored in whole chunks only, retry the rest in smaller uploads", readErr)
	case readErr != nil:
		code = http.StatusBadRequest
		res.Error = fmt.Sprintf("reading the body failed after line %d: %v; only whole chunks before it were stored, retry the upload", res.Lines, readErr)
	case res.Invalid > 0:
		code = http.StatusBadRequest
	}
	lvl := s.log.Info
	if code >= 500 || readErr != nil {
		lvl = s.log.Warn
	}
	lvl("ingest", "unit", name, "principal", principal, "code", code, "lines", res.Lines,
		"accepted", res.Accepted, "duplicates", res.Duplicates, "invalid", res.Invalid,
		"duration", time.Since(start), "err", errors.Join(up.appendErr, readErr))
	s.reply(w, routeIngest, code, res)
}

// upload is one request's ingest: it reads lines, cuts chunks and appends
// each as one event, up to AppendsInFlight at once.
type upload struct {
	s      *Service
	unit   string
	stream string
	md     events.Metadata
	// ctx outlives a client that goes away: a chunk handed to the log is
	// appended whole or not at all, and its outcome known.
	ctx context.Context

	sem        chan struct{}
	wg         sync.WaitGroup
	failed     atomic.Bool
	accepted   atomic.Int64
	duplicates atomic.Int64

	mu        sync.Mutex
	appendErr error // the first failed append; set before failed

	// head is the log's head when the upload began (headKnown: it could
	// be read): a chunk acknowledged at or before it was a duplicate.
	head      events.Head
	headKnown bool
}

func (s *Service) newUpload(ctx context.Context, name string, md events.Metadata) *upload {
	up := &upload{
		s:      s,
		unit:   name,
		stream: Category + "-" + name,
		md:     md,
		ctx:    context.WithoutCancel(ctx),
		sem:    make(chan struct{}, s.cfg.AppendsInFlight),
	}
	head, err := s.cfg.Store.Head(ctx)
	up.head, up.headKnown = head, err == nil
	return up
}

// run reads body to its end, the first read error or the first failed
// append, and returns the counts. On a read error the chunk being filled
// is dropped, so that what is stored ends at a chunk boundary and a retry
// of the same body stores nothing twice.
func (up *upload) run(body io.Reader) (Result, error) {
	s := up.s
	res := Result{Unit: up.unit}
	invalid := func(line int, msg string) {
		res.Invalid++
		if len(res.Errors) < s.cfg.MaxReportedErrors {
			res.Errors = append(res.Errors, LineError{Line: line, Error: msg})
		} else {
			res.ErrorsTruncated = true
		}
	}
	br := s.readers.Get().(*bufio.Reader)
	br.Reset(body)
	defer func() {
		br.Reset(nil)
		s.readers.Put(br)
	}()
	c := s.chunks.Get().(*chunk)
	defer func() {
		c.reset()
		s.chunks.Put(c)
	}()

	var readErr error
	for !up.failed.Load() {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Skip the rest of the line without keeping it.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				readErr = err
				break
			}
			res.Lines++
			invalid(res.Lines, fmt.Sprintf("line is longer than %d bytes; split the upload into one reading per line", s.cfg.MaxLineBytes))
			if err == io.EOF {
				break
			}
			continue
		}
		if err != nil && err != io.EOF {
			readErr = err // the line read so far is incomplete: drop it
			break
		}
		if len(b) > 0 {
			res.Lines++
			if b[len(b)-1] == '\n' {
				b = b[:len(b)-1]
			}
			if !isBlank(b) {
				if rd, derr := decodeLine(b); derr != nil {
					invalid(res.Lines, derr.Error())
				} else if c.add(rd, res.Lines) {
					up.submit(c)
				}
			}
		}
		if err == io.EOF {
			break
		}
	}
	if readErr == nil && c.len() > 0 && !up.failed.Load() {
		up.submit(c)
	}
	if readErr != nil && c.len() > 0 {
		s.log.Warn("ingest: upload interrupted; dropping the readings of the unfinished chunk",
			"unit", up.unit, "lines", fmt.Sprintf("%d-%d", c.firstLine, c.lastLine), "readings", c.len(), "err", readErr)
	}
	up.wg.Wait()
	res.Accepted, res.Duplicates = up.accepted.Load(), up.duplicates.Load()
	s.metrics.invalid.Add(float64(res.Invalid))
	return res, readErr
}

// submit encodes c as an event, resets c and appends the event in the
// background, waiting while AppendsInFlight appends are under way.
func (up *upload) submit(c *chunk) {
	n, first, last := c.len(), c.firstLine, c.lastLine
	ev, err := c.event(up.unit, up.md)
	c.reset()
	if err != nil {
		up.fail(err)
		return
	}
	up.sem <- struct{}{}
	up.wg.Go(func() {
		defer func() { <-up.sem }()
		up.append(ev, n, first, last)
	})
}

func (up *upload) append(ev events.Event, n, first, last int) {
	st := up.s.cfg.Store
	start := time.Now()
	res, err := st.Append(up.ctx, up.stream, events.Any, ev)
	up.s.metrics.appendSeconds.Observe(time.Since(start).Seconds())
	dup := false
	switch {
	case errors.Is(err, events.ErrDuplicateEventID):
		dup, err = true, nil // the same chunk is in the log already, elsewhere
	case err == nil:
		// A chunk already in the log comes back with its original
		// position, at or before the head when the upload began.
		dup = up.headKnown && res.FirstPosition <= up.head.Position
	}
	if err != nil {
		up.fail(fmt.Errorf("append lines %d-%d (%d readings) to %s: %w", first, last, n, up.stream, err))
		return
	}
	up.accepted.Add(int64(n))
	up.s.metrics.accepted.Add(float64(n))
	if dup {
		up.duplicates.Add(int64(n))
		up.s.metrics.duplicates.Add(float64(n))
	}
}

func (up *upload) fail(err error) {
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.appendErr == nil {
		up.appendErr = err
		up.failed.Store(true)
	}
}

// bodyTooLargeError is the read error of a body past Config.MaxBodyBytes.
type bodyTooLargeError struct{ limit int64 }

func (e *bodyTooLargeError) Error() string {
	return fmt.Sprintf("the body is larger than %d bytes", e.limit)
}

// limitReader fails with a *bodyTooLargeError when the body goes on past
// limit bytes, unlike io.LimitReader which ends quietly.
type limitReader struct {
	r     io.Reader
	left  int64
	limit int64
}

func newLimitReader(r io.Reader, limit int64) *limitReader {
	return &limitReader{r: r, left: limit, limit: limit}
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte // is there more?
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, &bodyTooLargeError{l.limit}
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}
