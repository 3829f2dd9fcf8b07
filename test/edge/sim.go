// Package edge runs a Logbook control plane in-process with many simulated
// edge agents: the fleet test (fleet_test.go) and the bench's command-rtt
// scenario (test/bench) share what is here.
//
// A simulated agent is one nats.go connection per unit, with the unit's own
// credentials and inbox prefix. It subscribes "<unit>.command.>", verifies
// each command's signature with the control plane's key, acks it as stored,
// "runs" it once (deduplicating redeliveries by command id, as a real agent
// must) and reports an AgentCommandResult as an EdgeEvent request, retried
// until the bridge acks it.
package edge

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/cluster/bridge"
	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// QuietLogger discards everything.
func QuietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// ControlPlane is an in-process control plane: store, entity host with the
// unit kind, embedded NATS server, privileged connection and bridge.
type ControlPlane struct {
	Store  *embedded.Store
	Host   *actors.Host
	Server *bridge.Server
	NC     *nats.Conn
	Key    ed25519.PrivateKey
	Creds  *bridge.MemoryCredentials
	Bridge *bridge.Bridge
}

// StartControlPlane opens an embedded store in dir and starts the rest,
// the NATS server on a free port of 127.0.0.1. cfg's Logger is replaced by
// a quiet one when nil.
func StartControlPlane(ctx context.Context, dir string, cfg bridge.Config) (cp *ControlPlane, err error) {
	cp = &ControlPlane{Creds: bridge.NewMemoryCredentials()}
	defer func() {
		if err != nil {
			cp.Close()
			cp = nil
		}
	}()
	if _, cp.Key, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return cp, err
	}
	if cp.Store, err = embedded.Open(ctx, dir); err != nil {
		return cp, fmt.Errorf("open store: %w", err)
	}
	if cp.Host, err = actors.NewHost(cp.Store, actors.WithLogger(QuietLogger())); err != nil {
		return cp, err
	}
	if err = cp.Host.Register(unit.Kind); err != nil {
		return cp, err
	}
	scfg := bridge.DefaultServerConfig()
	scfg.Host, scfg.Port, scfg.Logger = "127.0.0.1", -1, QuietLogger()
	if cp.Server, err = bridge.StartServer(ctx, cp.Creds, scfg); err != nil {
		return cp, fmt.Errorf("start server: %w", err)
	}
	if cp.NC, err = cp.Server.ConnectInternal(); err != nil {
		return cp, err
	}
	if cfg.Logger == nil {
		cfg.Logger = QuietLogger()
	}
	// Start needs a deadline (nats' FlushWithContext); it bounds only the start.
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if cp.Bridge, err = bridge.Start(startCtx, cp.NC, cp.Host, cp.Store, cp.Key, cfg); err != nil {
		return cp, fmt.Errorf("start bridge: %w", err)
	}
	return cp, nil
}

// Close stops everything that was started, in reverse order.
func (cp *ControlPlane) Close() {
	if cp.Bridge != nil {
		_ = cp.Bridge.Close()
	}
	if cp.NC != nil {
		cp.NC.Close()
	}
	if cp.Server != nil {
		_ = cp.Server.Close()
	}
	if cp.Host != nil {
		_ = cp.Host.Close()
	}
	if cp.Store != nil {
		_ = cp.Store.Close()
	}
}

// Public is the control plane's command-signing public key.
func (cp *ControlPlane) Public() ed25519.PublicKey { return cp.Key.Public().(ed25519.PublicKey) }

// URL is the NATS client URL agents connect to.
func (cp *ControlPlane) URL() string { return cp.Server.ClientURL() }

// UnitName is the name of simulated unit i.
func UnitName(i int) string { return fmt.Sprintf("sim%05d", i) }

// AddUnits registers n units (UnitName(from..from+n-1)) and gives each its
// own NATS credential, with workers concurrent registrations; it returns
// the passwords, password i for unit from+i.
func (cp *ControlPlane) AddUnits(ctx context.Context, from, n, workers int) ([]string, error) {
	passwords := make([]string, n)
	err := Parallel(ctx, workers, n, func(i int) error {
		name := UnitName(from + i)
		if _, err := cp.Host.Execute(ctx, "unit-"+name, &logbookv1.RegisterUnit{Platform: "linux/arm64"}, events.Metadata{Principal: "sim"}); err != nil {
			return fmt.Errorf("register %s: %w", name, err)
		}
		pw := bridge.NewSecret()
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		if err := cp.Creds.PutCredential(ctx, bridge.Credential{Unit: name, Secret: bridge.NewSaltedHash(pw), PublicKey: pub, EnrolledAt: time.Now()}); err != nil {
			return err
		}
		passwords[i] = pw
		return nil
	})
	return passwords, err
}

// Issue issues command id ("shellcommand" on "operatingsystem") to unit name.
// Like the API's IssueCommands it needs only the outcome, not the unit's
// state after it, so it does not have the entity copy its state.
func (cp *ControlPlane) Issue(ctx context.Context, name, id string, deadline time.Time) error {
	_, err := cp.Host.ExecuteNoState(ctx, "unit-"+name, &logbookv1.IssueUnitCommand{
		CommandId: id, Method: "shellcommand", Domain: "operatingsystem", Args: []string{"uptime"},
		Deadline: timestamppb.New(deadline),
	}, events.Metadata{Principal: "sim"})
	return err
}

// Parallel calls f(0..n-1) from workers goroutines and returns the first
// errors joined.
func Parallel(ctx context.Context, workers, n int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// Agent is one simulated agent.
type Agent struct {
	Name string
	nc   *nats.Conn
	pub  ed25519.PublicKey
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	sendMu sync.Mutex // one event in flight at a time: spool order
	seq    uint64

	mu         sync.Mutex
	executions map[string]int
	deliveries atomic.Int64
	badSig     atomic.Int64
	err        error
}

// Connect connects the agent for unit name, subscribes to its commands and,
// when heartbeat is set, sends one AgentHeartbeat.
func Connect(ctx context.Context, url, name, password string, pub ed25519.PublicKey, heartbeat bool) (*Agent, error) {
	a := &Agent{Name: name, pub: pub, executions: make(map[string]int)}
	a.ctx, a.stop = context.WithCancel(context.Background())
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.UserInfo(name, password),
		nats.CustomInboxPrefix(bridge.InboxPrefix(name)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond),
		nats.Timeout(30*time.Second),
	)
	if err != nil {
		a.stop()
		return nil, fmt.Errorf("connect %s: %w", name, err)
	}
	a.nc = nc
	if _, err := nc.Subscribe(name+".command.>", a.handle); err != nil {
		a.Close()
		return nil, err
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := nc.FlushWithContext(fctx); err != nil {
		a.Close()
		return nil, err
	}
	if heartbeat {
		if err := a.Heartbeat(ctx); err != nil {
			a.Close()
			return nil, err
		}
	}
	return a, nil
}

// Close disconnects the agent and waits for its result senders.
func (a *Agent) Close() {
	a.stop()
	if a.nc != nil {
		a.nc.Close()
	}
	a.wg.Wait()
}

// Heartbeat sends one AgentHeartbeat and waits for its ack.
func (a *Agent) Heartbeat(ctx context.Context) error {
	return a.send(ctx, "heartbeat", "agent", &logbookv1.AgentHeartbeat{AgentVersion: "sim/1", StartedAt: timestamppb.Now()})
}

// Executions returns how many times command id ran.
func (a *Agent) Executions(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.executions[id]
}

// ExecutionCounts returns a copy of every command id's run count.
func (a *Agent) ExecutionCounts() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(a.executions))
	for k, v := range a.executions {
		out[k] = v
	}
	return out
}

// Deliveries is how many command requests arrived (redeliveries included).
func (a *Agent) Deliveries() int64 { return a.deliveries.Load() }

// BadSignatures is how many commands failed verification.
func (a *Agent) BadSignatures() int64 { return a.badSig.Load() }

// Err is the first error the agent hit reporting a result.
func (a *Agent) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *Agent) fail(err error) {
	a.mu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
}

func (a *Agent) handle(m *nats.Msg) {
	a.deliveries.Add(1)
	c := new(logbookv1.EdgeCommand)
	ack := &logbookv1.EdgeCommandAck{}
	if err := proto.Unmarshal(m.Data, c); err != nil || !c.VerifySignature(a.pub) || c.GetUnit() != a.Name {
		a.badSig.Add(1)
		ack.CommandId, ack.Refusal = c.GetCommandId(), "bad signature"
		data, _ := proto.Marshal(ack)
		_ = m.Respond(data)
		return
	}
	id := c.GetCommandId()
	a.mu.Lock()
	first := a.executions[id] == 0
	if first {
		a.executions[id] = 1 // "stored" and run once; duplicates are acked again
	}
	a.mu.Unlock()
	ack.CommandId, ack.Stored = id, true
	data, _ := proto.Marshal(ack)
	if err := m.Respond(data); err != nil {
		a.fail(fmt.Errorf("%s: ack %s: %w", a.Name, id, err))
	}
	if !first {
		return
	}
	started := timestamppb.Now()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		res := &logbookv1.AgentCommandResult{CommandId: id, ExitCode: 0, Output: []byte("up 1 day"), StartedAt: started, FinishedAt: timestamppb.Now()}
		if err := a.send(a.ctx, c.GetMethod(), c.GetDomain(), res); err != nil && a.ctx.Err() == nil {
			a.fail(fmt.Errorf("%s: result of %s: %w", a.Name, id, err))
		}
	}()
}

// send publishes msg as an EdgeEvent request and retries (same id and seq)
// until the bridge acks it as stored; an ack with error set is an error.
func (a *Agent) send(ctx context.Context, method, domain string, msg proto.Message) error {
	data, err := proto.Marshal(msg)
	if err != nil {
		return err
	}
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	a.seq++
	id := events.NewID()
	ev := &logbookv1.EdgeEvent{
		Id: id[:], Unit: a.Name, Method: method, Domain: domain, Time: timestamppb.Now(),
		Type: string(msg.ProtoReflect().Descriptor().FullName()), Data: data, Seq: a.seq,
	}
	payload, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	subj := fmt.Sprintf("%s.event.%s.%s", a.Name, method, domain)
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		reply, err := a.nc.RequestWithContext(rctx, subj, payload)
		cancel()
		if err == nil {
			ack := new(logbookv1.EdgeEventAck)
			if err := proto.Unmarshal(reply.Data, ack); err != nil {
				return err
			}
			if ack.GetError() != "" {
				return fmt.Errorf("event rejected: %s", ack.GetError())
			}
			if ack.GetStored() {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// No reply (or not stored yet): retry after a short pause.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ConnectFleet connects agents for UnitName(from+i) with passwords[i],
// workers at a time.
func ConnectFleet(ctx context.Context, cp *ControlPlane, from int, passwords []string, workers int, heartbeat bool) ([]*Agent, error) {
	agents := make([]*Agent, len(passwords))
	err := Parallel(ctx, workers, len(passwords), func(i int) error {
		a, err := Connect(ctx, cp.URL(), UnitName(from+i), passwords[i], cp.Public(), heartbeat)
		if err != nil {
			return err
		}
		agents[i] = a
		return nil
	})
	if err != nil {
		CloseFleet(agents)
		return nil, err
	}
	return agents, nil
}

// CloseFleet closes every agent (nil ones skipped).
func CloseFleet(agents []*Agent) {
	var wg sync.WaitGroup
	for _, a := range agents {
		if a != nil {
			wg.Add(1)
			go func() { defer wg.Done(); a.Close() }()
		}
	}
	wg.Wait()
}
