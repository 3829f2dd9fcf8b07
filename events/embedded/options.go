package embedded

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Option configures Open.
type Option func(*config) error

type config struct {
	fs          vfs.FS
	inMemory    bool
	segmentSize int64
	logger      *slog.Logger
	now         func() time.Time
	maxBatch    int
}

func defaultConfig() config {
	return config{
		fs:          vfs.Default,
		segmentSize: 128 << 20,
		logger:      slog.Default(),
		now:         time.Now,
		maxBatch:    8 << 20,
	}
}

// InMemory keeps the whole store in memory (Pebble's vfs.NewMem for both the
// segments and the index). Nothing survives Close; the dir given to Open is
// only a name. Meant for fast tests; the behaviour is otherwise identical.
func InMemory() Option {
	return func(c *config) error {
		c.fs = vfs.NewMem()
		c.inMemory = true
		return nil
	}
}

// WithFS stores segments and index on fs, e.g. a vfs.NewCrashableMem for
// crash simulation in tests.
func WithFS(fs vfs.FS) Option {
	return func(c *config) error {
		if fs == nil {
			return fmt.Errorf("embedded: WithFS: nil filesystem")
		}
		c.fs = fs
		return nil
	}
}

// WithSegmentSize sets the size at which the log rolls over to a new segment
// file (default 128 MiB). A segment always holds at least one whole append, so
// a segment can exceed this by one append.
func WithSegmentSize(n int64) Option {
	return func(c *config) error {
		if n < 4096 {
			return fmt.Errorf("embedded: WithSegmentSize(%d): must be at least 4096", n)
		}
		c.segmentSize = n
		return nil
	}
}

// WithLogger sets the logger for recovery and background errors.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("embedded: WithLogger: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithClock sets the clock that stamps events appended without a time.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("embedded: WithClock: nil clock")
		}
		c.now = now
		return nil
	}
}
