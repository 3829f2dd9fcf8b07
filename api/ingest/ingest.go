package ingest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections/readmodel"
)

// Routes the Service serves; Handler mounts them, or mount the handlers
// yourself at these paths.
const (
	PathIngest  = "/ingest"
	PathLatest  = "/api/statistics/latest"
	PathBuckets = "/api/statistics/buckets"
)

// UnitHeader names the unit of an upload when the query has no unit
// parameter.
const UnitHeader = "Logbook-Unit"

// Category is the stream category of readings: unit ship1's readings are
// stored in "readings-ship1".
const Category = readmodel.ReadingsCategory

// Errors an Authorize function returns, wrapped with its reason (which is
// sent to the client, so it must not leak secrets). Any other error
// answers 500 and is logged.
var (
	// ErrUnauthenticated: the request carries no credentials, or
	// unknown or expired ones. Answered 401 with a WWW-Authenticate
	// header.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: the credentials are valid but may not do this (for
	// example write readings for this unit). Answered 403.
	ErrForbidden = errors.New("forbidden")
)

// Config configures a Service. Store, Readings and Authorize are required;
// the other fields default to DefaultConfig's values when zero.
type Config struct {
	// Store is the log readings are appended to.
	Store events.Store
	// Readings serves the statistics endpoints: the readings read model
	// (readmodel.Readings) behind readmodel.Guard, so that they answer
	// 503 until it is ready.
	Readings readmodel.Reader
	// Authorize authenticates every request before its body is read and
	// returns who made it (recorded as the Principal of the events it
	// appends). It returns an error wrapping ErrUnauthenticated or
	// ErrForbidden to refuse. For uploads it may check that the principal
	// may write the unit, read with UnitOf(r).
	Authorize func(r *http.Request) (principal string, err error)
	// Logger receives one line per request and the failures; nil means
	// slog.Default().
	Logger *slog.Logger

	// MaxLineBytes is the longest line of an upload, newline excluded; a
	// longer line is reported invalid and skipped without being buffered.
	MaxLineBytes int
	// MaxReportedErrors bounds the invalid lines a response lists; the
	// others are counted only.
	MaxReportedErrors int
	// MaxBodyBytes bounds an upload's body (after decompression); a
	// larger one is cut there and answered 413. Negative means no limit:
	// a multi-day backlog streams through in bounded memory anyway.
	MaxBodyBytes int64
	// AppendsInFlight is how many chunks of one upload may be waiting
	// for the log at once, while the next is decoded.
	AppendsInFlight int
}

// DefaultConfig returns the defaults of Config's optional fields.
func DefaultConfig() Config {
	return Config{
		MaxLineBytes:      64 << 10,
		MaxReportedErrors: 1000,
		MaxBodyBytes:      -1,
		AppendsInFlight:   4,
	}
}

// Validate reports every problem of c, joined.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("ingest: Config.Store is required"))
	}
	if c.Readings == nil {
		errs = append(errs, errors.New("ingest: Config.Readings is required"))
	}
	if c.Authorize == nil {
		errs = append(errs, errors.New("ingest: Config.Authorize is required"))
	}
	if c.MaxLineBytes < 256 || c.MaxLineBytes > 16<<20 {
		errs = append(errs, fmt.Errorf("ingest: Config.MaxLineBytes %d: want 256 to %d", c.MaxLineBytes, 16<<20))
	}
	if c.MaxReportedErrors < 1 {
		errs = append(errs, fmt.Errorf("ingest: Config.MaxReportedErrors %d: want at least 1", c.MaxReportedErrors))
	}
	if c.AppendsInFlight < 1 || c.AppendsInFlight > 64 {
		errs = append(errs, fmt.Errorf("ingest: Config.AppendsInFlight %d: want 1 to 64", c.AppendsInFlight))
	}
	return errors.Join(errs...)
}

// Service serves readings ingest and the statistics endpoints. Its
// methods are safe for concurrent use; it owns no goroutine outside the
// requests it serves, so it needs no Close.
type Service struct {
	cfg      Config
	log      *slog.Logger
	chunking chunkParams
	metrics  *metrics
	readers  sync.Pool // *bufio.Reader of MaxLineBytes+1
	chunks   sync.Pool // *chunk
}

// New returns a Service for cfg, its zero optional fields set from
// DefaultConfig.
func New(cfg Config) (*Service, error) {
	def := DefaultConfig()
	if cfg.MaxLineBytes == 0 {
		cfg.MaxLineBytes = def.MaxLineBytes
	}
	if cfg.MaxReportedErrors == 0 {
		cfg.MaxReportedErrors = def.MaxReportedErrors
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = def.MaxBodyBytes
	}
	if cfg.AppendsInFlight == 0 {
		cfg.AppendsInFlight = def.AppendsInFlight
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: cfg.Logger, chunking: defaultChunking, metrics: newMetrics()}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.readers.New = func() any { return bufio.NewReaderSize(nil, cfg.MaxLineBytes+1) }
	s.chunks.New = func() any { return newChunk(s.chunking) }
	return s, nil
}

// Handler returns a handler serving POST PathIngest and GET PathLatest and
// PathBuckets; other methods on them are answered 405.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST "+PathIngest, s.IngestHandler())
	mux.Handle("GET "+PathLatest, s.LatestHandler())
	mux.Handle("GET "+PathBuckets, s.BucketsHandler())
	return mux
}

// authorize runs Config.Authorize and answers the refusal itself; ok is
// false when the request must stop.
func (s *Service) authorize(w http.ResponseWriter, r *http.Request, route string) (principal string, ok bool) {
	principal, err := s.cfg.Authorize(r)
	switch {
	case err == nil:
		return principal, true
	case errors.Is(err, ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Bearer realm="logbook"`)
		s.replyError(w, route, http.StatusUnauthorized, err.Error())
	case errors.Is(err, ErrForbidden):
		s.replyError(w, route, http.StatusForbidden, err.Error())
	default:
		s.log.Error("ingest: authorization failed", "route", route, "err", err)
		s.replyError(w, route, http.StatusInternalServerError, "authorization failed; see the server log")
	}
	return "", false
}

// errorBody is the JSON body of every refusal but an upload's.
type errorBody struct {
	Error string `json:"error"`
}

func (s *Service) replyError(w http.ResponseWriter, route string, code int, msg string) {
	s.reply(w, route, code, errorBody{Error: msg})
}

// reply writes v as JSON with code and counts the request.
func (s *Service) reply(w http.ResponseWriter, route string, code int, v any) {
	s.metrics.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("ingest: encode response", "route", route, "err", err)
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
