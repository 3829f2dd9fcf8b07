package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/events/embedded"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Agent is the runtime of one edge unit. Open starts it; Close stops it.
type Agent struct {
	cfg       Config
	logger    *slog.Logger
	id        *Identity
	spool     *Spool
	commands  *commander
	methods   map[string]method
	syslog    *syslogMethod
	procs     *supervisor
	nc        *nats.Conn
	sub       *nats.Subscription
	startedAt time.Time

	// workCtx bounds commands, followers and processes; linkCtx the
	// sender and heartbeats, which stop after them.
	workCtx, linkCtx   context.Context
	stopWork, stopLink context.CancelFunc
	linkWG             sync.WaitGroup
	linkUp             chan struct{}
	serversMu          sync.Mutex // rememberServers' (id.URLs, the enrolment file)
	closeOnce          sync.Once
	closeErr           error
	done               chan struct{}
}

// Open starts the agent: it loads its identity from cfg.DataDir (enrolling
// with cfg.Token on first start, retrying while the control plane is
// unreachable, until ctx is done), opens the spool and command log, settles
// commands left over from the last run, resumes followed logs and
// supervised processes, and connects to NATS. Open does not wait for the
// link: an agent offline at start spools until it connects.
//
// Errors: ErrNoToken, ErrEnrolRejected, ErrCorruptIdentity,
// ErrUnitMismatch, or a configuration or storage error.
func Open(ctx context.Context, cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent: config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Enroller == nil {
		cfg.Enroller = NATSEnroller{URLs: cfg.Servers}
	}
	logger := cfg.Logger.With("unit", cfg.Unit)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: data dir: %w", err)
	}
	id, err := enrolWithRetry(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, logger: logger, id: id, startedAt: time.Now(), linkUp: make(chan struct{}, 1),
		done: make(chan struct{})}
	a.workCtx, a.stopWork = context.WithCancel(context.Background())
	a.linkCtx, a.stopLink = context.WithCancel(context.Background())
	if err := a.open(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func enrolWithRetry(ctx context.Context, cfg Config, logger *slog.Logger) (*Identity, error) {
	bo := backoff{min: cfg.RetryMin, max: cfg.RetryMax}
	for {
		id, err := loadOrEnrol(ctx, cfg.DataDir, cfg.Unit, cfg.Token, cfg.Enroller)
		if err == nil {
			return id, nil
		}
		if errors.Is(err, ErrNoToken) || errors.Is(err, ErrEnrolRejected) || errors.Is(err, ErrCorruptIdentity) ||
			errors.Is(err, ErrUnitMismatch) || errors.Is(err, os.ErrPermission) {
			return nil, err
		}
		wait := bo.next()
		logger.Warn("enrolment failed; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

func (a *Agent) path(elem ...string) string {
	return filepath.Join(append([]string{a.cfg.DataDir}, elem...)...)
}

func (a *Agent) open(ctx context.Context) error {
	cfg := a.cfg
	var err error
	if a.spool, err = OpenSpool(ctx, a.path("spool"), a.path("spool.acked"), cfg.Unit, a.logger,
		WithSpoolCompactAt(cfg.SpoolCompactBytes)); err != nil {
		return err
	}
	cmdLog, err := embedded.Open(ctx, a.path("commands"), embedded.WithLogger(a.logger))
	if err != nil {
		return fmt.Errorf("open command log: %w", err)
	}
	a.commands = &commander{a: a, log: cmdLog}
	records := &pidRecords{dir: a.path("running"), logger: a.logger}
	// Before anything runs: what the last run left running must be gone
	// before its commands are reported failed and its processes started.
	if err := records.killLeftovers(ctx); err != nil {
		return err
	}
	allow := map[string]bool{}
	for _, p := range cfg.Allow {
		allow[p] = true
	}
	a.syslog = &syslogMethod{files: cfg.Syslog, dir: a.path("syslog"), poll: cfg.SyslogPoll, spool: a.spool,
		logger: a.logger, ctx: a.workCtx, followers: map[string]*follower{}}
	a.procs = &supervisor{allow: allow, dir: a.path("processes"), records: records, spool: a.spool, logger: a.logger,
		ctx: a.workCtx, cfg: cfg, procs: map[string]*supervised{}}
	a.methods = map[string]method{
		"shellcommand":     &shellMethod{allow: allow, max: cfg.MaxCommandDuration, grace: cfg.StopGrace, records: records},
		"syslogforwarding": a.syslog,
		processMethodName:  a.procs,
		"config":           &configMethod{dir: a.path("config")},
	}
	if err := a.procs.resume(); err != nil {
		return fmt.Errorf("resume processes: %w", err)
	}
	a.syslog.resume()
	if err := a.commands.recoverCommands(ctx); err != nil {
		return err
	}

	urls := cfg.Servers
	if len(a.id.URLs) > 0 {
		urls = a.id.URLs
	}
	a.nc, err = nats.Connect(strings.Join(urls, ","),
		nats.Name("logbook-agent "+cfg.Unit),
		nats.UserInfo(a.id.User, a.id.Password),
		nats.CustomInboxPrefix(DefaultInboxPrefix(cfg.Unit)),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.ReconnectBufSize(-1), // while offline, publishing fails and the spool keeps the events
		nats.ConnectHandler(func(nc *nats.Conn) {
			a.signalLinkUp()
			a.logger.Info("link: connected", "server", nc.ConnectedUrlRedacted())
			a.rememberServers(nc)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			a.signalLinkUp()
			a.logger.Info("link: reconnected", "server", nc.ConnectedUrlRedacted())
			a.rememberServers(nc)
		}),
		nats.DiscoveredServersHandler(a.rememberServers),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { a.logger.Warn("link: disconnected", "err", err) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { a.logger.Warn("link: error", "err", err) }),
	)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", strings.Join(urls, ","), err)
	}
	if a.sub, err = a.nc.Subscribe(cfg.Unit+".command.>", a.commands.handle); err != nil {
		return fmt.Errorf("subscribe to commands: %w", err)
	}
	s := &sender{nc: a.nc, spool: a.spool, unit: cfg.Unit, window: cfg.SendWindow, timeout: cfg.AckTimeout,
		retry: backoff{min: cfg.RetryMin, max: cfg.RetryMax}, logger: a.logger, linkUp: a.linkUp}
	a.linkWG.Add(1)
	go func() { defer a.linkWG.Done(); s.run(a.linkCtx) }()
	if cfg.HeartbeatInterval > 0 {
		a.linkWG.Add(1)
		go func() { defer a.linkWG.Done(); a.heartbeats(a.linkCtx) }()
	}
	a.logger.Info("agent started", "data_dir", cfg.DataDir, "servers", urls, "backlog", a.spool.Backlog())
	return nil
}

// rememberServers keeps the servers the link has learned of in the stored
// enrolment. A control-plane node's NATS server announces those of the
// other nodes; the client fails over to them while it runs, and with them
// stored a later start finds the control plane too while the node the unit
// enrolled through is down. Called on nats.go's callback goroutine.
func (a *Agent) rememberServers(nc *nats.Conn) {
	learned := nc.DiscoveredServers()
	if len(learned) == 0 {
		return
	}
	a.serversMu.Lock()
	defer a.serversMu.Unlock()
	before := len(a.id.URLs)
	urls, err := addServerURLs(enrolmentPath(a.cfg.DataDir), a.cfg.Servers, learned)
	if err != nil {
		a.logger.Warn("link: could not store the servers learned from the control plane", "err", err)
		return
	}
	if len(urls) > before {
		a.id.URLs = urls
		a.logger.Info("link: stored servers learned from the control plane", "servers", urls[before:])
	}
}

func (a *Agent) signalLinkUp() {
	select {
	case a.linkUp <- struct{}{}:
	default:
	}
}

// heartbeats publishes an AgentHeartbeat every HeartbeatInterval while
// connected. Heartbeats bypass the spool: they say "alive now", so one
// that cannot be delivered is dropped rather than piled up. Each is an
// EdgeEvent with seq 0 (not spooled) sent as a request on
// <unit>.event.heartbeat.agent; the reply is awaited for HeartbeatTimeout
// and otherwise ignored.
func (a *Agent) heartbeats(ctx context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		if a.nc.IsConnected() {
			a.heartbeat(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Agent) heartbeat(ctx context.Context) {
	e, err := newEdgeEvent("heartbeat", "agent", &logbookv1.AgentHeartbeat{
		AgentVersion: a.cfg.Version,
		StartedAt:    timestamppb.New(a.startedAt),
		SpoolBacklog: a.spool.Backlog(),
	})
	if err != nil {
		return
	}
	e.Unit = a.cfg.Unit
	data, _ := proto.Marshal(e)
	ctx, cancel := context.WithTimeout(ctx, a.cfg.HeartbeatTimeout)
	defer cancel()
	if _, err := a.nc.RequestWithContext(ctx, subjectFor(a.cfg.Unit, "event", "heartbeat", "agent"), data); err != nil {
		a.logger.Debug("heartbeat not acknowledged", "err", err)
	}
}

// Emit spools a unit event (e.g. an AgentReading) for delivery as
// <unit>.event.<method>.<domain>. It returns the event's seq once the event
// is durable in the spool.
func (a *Agent) Emit(ctx context.Context, method, domain string, msg proto.Message) (uint64, error) {
	return a.spool.Emit(ctx, method, domain, msg)
}

// Spool returns the agent's spool (for its head, acknowledged seq and backlog).
func (a *Agent) Spool() *Spool { return a.spool }

// Identity returns the agent's identity.
func (a *Agent) Identity() *Identity { return a.id }

// Done is closed when Close has finished.
func (a *Agent) Done() <-chan struct{} { return a.done }

// Close stops the agent: it stops taking commands, stops running commands
// (their results are spooled), followers and supervised processes, then the
// spool's sender and heartbeats, and closes the link, the spool and the
// command log. It is idempotent and returns once everything has stopped.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		defer close(a.done)
		if a.sub != nil {
			a.sub.Unsubscribe()
		}
		a.stopWork()
		if a.commands != nil {
			a.commands.close()
		}
		if a.syslog != nil {
			a.syslog.wait()
		}
		if a.procs != nil {
			a.procs.wait()
		}
		a.stopLink()
		a.linkWG.Wait()
		a.closeErr = a.release()
		a.logger.Info("agent stopped")
	})
	return a.closeErr
}

func (a *Agent) release() error {
	var errs []error
	if a.nc != nil {
		a.nc.Close()
	}
	if a.commands != nil {
		errs = append(errs, a.commands.log.Close())
	}
	if a.spool != nil {
		errs = append(errs, a.spool.Close())
	}
	return errors.Join(errs...)
}

// Run opens the agent, runs it until ctx is done, and closes it.
func Run(ctx context.Context, cfg Config) error {
	a, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return a.Close()
}
