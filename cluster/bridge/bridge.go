package bridge

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/events"
)

// QueueGroup is the NATS queue group of the bridge's subscriptions, so that
// several control-plane processes sharing a NATS server split the work.
const QueueGroup = "logbook-bridge"

// DispatchConfig tunes command delivery.
type DispatchConfig struct {
	// AckTimeout is how long one delivery waits for the agent's
	// EdgeCommandAck (default 5s).
	AckTimeout time.Duration
	// BackoffBase and BackoffMax bound redelivery: the n-th retry waits
	// between half and all of min(BackoffBase*2^(n-1), BackoffMax)
	// (defaults 1s and 2m). A unit that connects is retried at once.
	BackoffBase, BackoffMax time.Duration
	// MaxInFlight bounds concurrent deliveries and expiries (default 64).
	MaxInFlight int
	// ExecuteTimeout bounds each aggregate command the dispatcher executes
	// (default 30s).
	ExecuteTimeout time.Duration
	// StartPosition is where the dispatcher starts reading the log: 0 (the
	// beginning, the default) or a position Bridge.Checkpoint returned.
	StartPosition uint64
}

// IntakeConfig tunes event intake.
type IntakeConfig struct {
	// MaxQueuedPerUnit bounds the events of one unit waiting to be
	// recorded; more are dropped unacknowledged (the agent redelivers)
	// (default 1024).
	MaxQueuedPerUnit int
	// HeartbeatTimeout: a unit not heard from for this long is recorded
	// disconnected (default 90s: three missed 30s heartbeats).
	HeartbeatTimeout time.Duration
	// ExecuteTimeout bounds recording one event (default 30s).
	ExecuteTimeout time.Duration
}

// Config configures a Bridge.
type Config struct {
	Dispatch DispatchConfig
	Intake   IntakeConfig
	// Enroller, when set, answers enrolment requests on EnrolSubject.
	Enroller *Enroller
	// QueueGroup of the bridge's subscriptions (default QueueGroup).
	// Bridges of one control plane share it; separate control planes on
	// one NATS server must not (they should not share a server at all).
	QueueGroup string
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Now is the dispatcher's and intake's clock (default time.Now). The
	// entity host has its own (actors.WithClock); keep them the same.
	Now func() time.Time
}

// DefaultConfig returns the defaults described on Config's fields.
func DefaultConfig() Config {
	return Config{
		Dispatch: DispatchConfig{
			AckTimeout:     5 * time.Second,
			BackoffBase:    time.Second,
			BackoffMax:     2 * time.Minute,
			MaxInFlight:    64,
			ExecuteTimeout: 30 * time.Second,
		},
		Intake: IntakeConfig{
			MaxQueuedPerUnit: 1024,
			HeartbeatTimeout: 90 * time.Second,
			ExecuteTimeout:   30 * time.Second,
		},
		QueueGroup: QueueGroup,
		Logger:     slog.Default(),
		Now:        time.Now,
	}
}

// Validate reports every problem of c, joined.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: must be positive", name, d))
		}
	}
	positive("Dispatch.AckTimeout", c.Dispatch.AckTimeout)
	positive("Dispatch.BackoffBase", c.Dispatch.BackoffBase)
	positive("Dispatch.ExecuteTimeout", c.Dispatch.ExecuteTimeout)
	positive("Intake.HeartbeatTimeout", c.Intake.HeartbeatTimeout)
	positive("Intake.ExecuteTimeout", c.Intake.ExecuteTimeout)
	if c.Dispatch.BackoffMax < c.Dispatch.BackoffBase {
		errs = append(errs, fmt.Errorf("Dispatch.BackoffMax %v: less than BackoffBase %v", c.Dispatch.BackoffMax, c.Dispatch.BackoffBase))
	}
	if c.Dispatch.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("Dispatch.MaxInFlight %d: must be at least 1", c.Dispatch.MaxInFlight))
	}
	if c.Intake.MaxQueuedPerUnit < 1 {
		errs = append(errs, fmt.Errorf("Intake.MaxQueuedPerUnit %d: must be at least 1", c.Intake.MaxQueuedPerUnit))
	}
	if c.QueueGroup == "" {
		errs = append(errs, errors.New("empty QueueGroup"))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("nil Logger"))
	}
	if c.Now == nil {
		errs = append(errs, errors.New("nil Now"))
	}
	return errors.Join(errs...)
}

// Bridge is the control-plane end of the edge link: it delivers pending
// remote commands to units, records what units send, tracks which units
// are connected, and (optionally) serves enrolment. Start it on the node
// that hosts the unit entities (the raft leader).
type Bridge struct {
	nc       *nats.Conn
	disp     *dispatcher
	in       *intake
	presence *presence
	subs     []*nats.Subscription

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	done      chan struct{}
	closeOnce sync.Once
}

// startFlushTimeout bounds the round trip to the server that confirms the
// bridge's subscriptions at start.
const startFlushTimeout = 30 * time.Second

// Start starts a bridge over nc (the privileged control-plane connection:
// Server.ConnectInternal, or a URL of an external NATS), host (with
// unit.Kind registered) and store (the same store as host's), signing
// commands with key. The bridge owns none of them: Close it before them.
// ctx bounds only the start; it need not carry a deadline.
func Start(ctx context.Context, nc *nats.Conn, host *actors.Host, store events.Store, key ed25519.PrivateKey, cfg Config) (*Bridge, error) {
	var errs []error
	if nc == nil {
		errs = append(errs, errors.New("nil nats connection"))
	}
	if host == nil {
		errs = append(errs, errors.New("nil entity host"))
	}
	if store == nil {
		errs = append(errs, errors.New("nil store"))
	}
	if len(key) != ed25519.PrivateKeySize {
		errs = append(errs, fmt.Errorf("signing key is %d bytes, want an ed25519 private key", len(key)))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("bridge: Start: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bridge: Start: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	b := &Bridge{nc: nc, cancel: cancel, done: make(chan struct{})}
	b.disp = newDispatcher(nc, host, store, key, cfg.Dispatch, cfg.Logger, cfg.Now)
	b.presence = &presence{
		host: host, timeout: cfg.Intake.HeartbeatTimeout, now: cfg.Now, logger: cfg.Logger,
		onConnect: b.disp.wake, sessions: map[string]*session{},
	}
	b.in = &intake{
		host: host, store: store, cfg: cfg.Intake, logger: cfg.Logger, presence: b.presence,
		ctx: runCtx, queues: map[string]*eventQueue{},
	}
	fail := func(err error) (*Bridge, error) {
		_ = b.Close()
		return nil, fmt.Errorf("bridge: Start: %w", err)
	}
	sub, err := nc.QueueSubscribe(EventWildcard, cfg.QueueGroup, b.in.receive)
	if err != nil {
		return fail(fmt.Errorf("subscribe %s: %w", EventWildcard, err))
	}
	b.subs = append(b.subs, sub)
	if cfg.Enroller != nil {
		sub, err := serveEnrolment(nc, cfg.Enroller, cfg.QueueGroup, cfg.Logger, cfg.Intake.ExecuteTimeout)
		if err != nil {
			return fail(fmt.Errorf("subscribe %s: %w", EnrolSubject, err))
		}
		b.subs = append(b.subs, sub)
	}
	// nats.go wants a deadline to flush with; a caller's ctx may have none.
	fctx, cancel := context.WithTimeout(ctx, startFlushTimeout)
	defer cancel()
	if err := nc.FlushWithContext(fctx); err != nil {
		return fail(fmt.Errorf("flush subscriptions: %w", err))
	}
	b.wg.Add(3)
	go func() { defer b.wg.Done(); b.disp.follow(runCtx) }()
	go func() { defer b.wg.Done(); b.disp.run(runCtx) }()
	go func() {
		defer b.wg.Done()
		b.presence.sweep(runCtx, max(cfg.Intake.HeartbeatTimeout/4, time.Millisecond))
	}()
	return b, nil
}

// Checkpoint returns the log position a restarted bridge should start its
// dispatcher from (DispatchConfig.StartPosition) so that it sees every
// command pending now. Persist it now and then; starting from 0 is always
// correct, only slower.
func (b *Bridge) Checkpoint(ctx context.Context) (uint64, error) {
	var cp uint64
	if !b.disp.call(ctx, func() { cp = b.disp.checkpoint() }) {
		return 0, fmt.Errorf("bridge: checkpoint: %w", b.callErr(ctx))
	}
	return cp, nil
}

// Pending returns how many commands the dispatcher is tracking (issued or
// delivered, not finished), as far as it has read the log.
func (b *Bridge) Pending(ctx context.Context) (int, error) {
	var n int
	if !b.disp.call(ctx, func() { n = len(b.disp.byID) }) {
		return 0, fmt.Errorf("bridge: pending: %w", b.callErr(ctx))
	}
	return n, nil
}

func (b *Bridge) callErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// Connected reports whether the bridge currently counts unit u as connected.
func (b *Bridge) Connected(u string) bool { return b.presence.connected(u) }

// Done is closed once Close has stopped everything.
func (b *Bridge) Done() <-chan struct{} { return b.done }

// Close unsubscribes, stops delivering, lets the events being recorded
// finish (without acking those still queued: agents redeliver them) and
// waits for its goroutines. It is idempotent and returns nil.
func (b *Bridge) Close() error {
	b.closeOnce.Do(func() {
		for _, s := range b.subs {
			_ = s.Unsubscribe()
		}
		b.cancel()
		// From here no receive adds an intake worker, so waiting for
		// them below cannot race with a new one.
		b.in.mu.Lock()
		b.in.closed = true
		b.in.mu.Unlock()
		b.wg.Wait()
		b.in.wg.Wait()
		close(b.done)
	})
	return nil
}
