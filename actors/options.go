package actors

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Option configures NewHost. An option that is given a bad value makes
// NewHost fail.
type Option func(*config) error

type config struct {
	now             func() time.Time
	logger          *slog.Logger
	idleTimeout     time.Duration
	snapshotEvery   int
	conflictRetries int
	// catchUp: read the stream past the entity's version before every
	// command and read; before runs first, in the caller's goroutine.
	catchUp bool
	before  func(ctx context.Context) error
}

// Defaults of NewHost.
const (
	DefaultIdleTimeout     = 10 * time.Minute
	DefaultSnapshotEvery   = 100
	DefaultConflictRetries = 3
)

func defaultConfig() config {
	return config{
		now:             time.Now,
		logger:          slog.Default(),
		idleTimeout:     DefaultIdleTimeout,
		snapshotEvery:   DefaultSnapshotEvery,
		conflictRetries: DefaultConflictRetries,
	}
}

// WithClock sets the clock that gives Env.Now and the time of appended
// events and snapshots (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("actors: WithClock: nil clock")
		}
		c.now = now
		return nil
	}
}

// WithLogger sets the logger for snapshot failures, panics, recoveries
// and protoactor's own warnings (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("actors: WithLogger: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithIdleTimeout sets how long an entity stays in memory without a
// command before it passivates (default DefaultIdleTimeout). Zero keeps
// entities until Passivate or Close; otherwise d must be at least 1 ms.
func WithIdleTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 || d > 0 && d < time.Millisecond {
			return fmt.Errorf("actors: WithIdleTimeout(%v): must be 0 (never) or at least 1ms", d)
		}
		c.idleTimeout = d
		return nil
	}
}

// WithSnapshotEvery makes an entity save a snapshot of its state once n or
// more events have been folded since its last snapshot (or since the
// version it recovered from one); n >= 1 (default DefaultSnapshotEvery).
func WithSnapshotEvery(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("actors: WithSnapshotEvery(%d): must be at least 1", n)
		}
		c.snapshotEvery = n
		return nil
	}
}

// WithConflictRetries sets how many times a command is decided again after
// the store refused its append because another writer appended first
// (default DefaultConflictRetries; 0 fails on the first conflict).
func WithConflictRetries(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("actors: WithConflictRetries(%d): must not be negative", n)
		}
		c.conflictRetries = n
		return nil
	}
}

// WithCatchUp is for a host that shares its log with other writers (the
// other nodes of a cluster, a tool appending directly): before every
// command and Read the entity reads its stream past its version, so it
// decides on everything appended so far, not only on what it appended
// itself. Without it a live entity trusts its own state, which is right
// when it is the stream's only writer; the store's expected-version check
// fences a stale decision to append, but a command refused on a stale
// state (an "unknown command" that another writer just issued) is not
// retried.
//
// before, when not nil, runs first for each command and Read, in the
// caller's goroutine with its context: in a cluster, a read barrier that
// returns once the local replica holds every acknowledged append. Its
// error fails the call.
func WithCatchUp(before func(ctx context.Context) error) Option {
	return func(c *config) error {
		c.catchUp, c.before = true, before
		return nil
	}
}
