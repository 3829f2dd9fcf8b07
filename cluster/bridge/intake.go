package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/process"
	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Stream categories the intake appends unit telemetry to, raw: the
// EdgeEvent's id, type and data become the stored event's.
const (
	// ReadingsCategory holds AgentReading events: "readings-<unit>".
	ReadingsCategory = "readings"
	// SyslogCategory holds AgentSyslogLine events: "syslog-<unit>".
	SyslogCategory = "syslog"
)

// UnitPrincipal is the principal of what the bridge records on behalf of
// unit u: "unit:<u>".
func UnitPrincipal(u string) string { return "unit:" + u }

// edgeTypes are the EdgeEvent payload types the intake takes.
var edgeTypes = func() *events.Registry {
	r := new(events.Registry)
	r.Register(&logbookv1.AgentHeartbeat{}, &logbookv1.AgentCommandResult{}, &logbookv1.AgentCommandRefused{},
		&logbookv1.AgentReading{}, &logbookv1.AgentSyslogLine{}, &logbookv1.ReportProcessStatus{})
	return r
}()

// intake takes unit events from NATS and records them: serially per unit
// (one worker goroutine per unit with queued events), in parallel across
// units.
type intake struct {
	host     *actors.Host
	store    events.Store
	cfg      IntakeConfig
	logger   *slog.Logger
	presence *presence
	ctx      context.Context

	mu     sync.Mutex
	closed bool
	queues map[string]*eventQueue
	wg     sync.WaitGroup
}

type eventQueue struct{ msgs []*nats.Msg }

// receive is the NATS handler for EventWildcard: it checks the subject and
// reply and queues the message on its unit's worker. It never blocks: when
// the unit's queue is full the message is dropped unacknowledged and the
// agent redelivers it.
func (in *intake) receive(m *nats.Msg) {
	subj, err := ParseSubject(m.Subject)
	if err != nil || subj.Kind != KindEvent {
		in.logger.Warn("bridge: event on a malformed subject dropped", "subject", m.Subject, "err", err)
		return
	}
	if m.Reply != "" && !strings.HasPrefix(m.Reply, InboxPrefix(subj.Unit)+".") {
		// Acks go only to the unit's own inbox: a unit must not make
		// the bridge publish to someone else's subjects.
		in.logger.Warn("bridge: event with a reply subject outside the unit's inbox dropped", "unit", subj.Unit, "reply", m.Reply)
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return
	}
	q := in.queues[subj.Unit]
	if q == nil {
		q = &eventQueue{}
		in.queues[subj.Unit] = q
		in.wg.Add(1)
		go in.work(subj.Unit, q)
	}
	if len(q.msgs) >= in.cfg.MaxQueuedPerUnit {
		in.logger.Warn("bridge: unit's event queue full; event dropped for redelivery", "unit", subj.Unit, "queued", len(q.msgs))
		return
	}
	q.msgs = append(q.msgs, m)
}

// work handles unit u's queued events in arrival order and exits when the
// queue is empty.
func (in *intake) work(u string, q *eventQueue) {
	defer in.wg.Done()
	for {
		in.mu.Lock()
		if len(q.msgs) == 0 || in.ctx.Err() != nil {
			delete(in.queues, u)
			in.mu.Unlock()
			return
		}
		m := q.msgs[0]
		q.msgs[0] = nil
		q.msgs = q.msgs[1:]
		in.mu.Unlock()
		in.handle(m)
	}
}

// handle records one event and acks it: stored once durable, rejected
// (stored false, error set) when it can never be stored, and not at all on
// a transient failure, so that the agent redelivers.
func (in *intake) handle(m *nats.Msg) {
	subj, _ := ParseSubject(m.Subject) // checked by receive
	ev := new(logbookv1.EdgeEvent)
	err := proto.Unmarshal(m.Data, ev)
	if err != nil {
		err = fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	} else {
		ctx, cancel := context.WithTimeout(in.ctx, in.cfg.ExecuteTimeout)
		err = in.record(ctx, subj, ev)
		cancel()
	}
	ack := &logbookv1.EdgeEventAck{Id: ev.GetId(), Seq: ev.GetSeq()}
	switch {
	case err == nil:
		ack.Stored = true
	case errors.Is(err, ErrInvalidEvent):
		ack.Error = err.Error()
		in.logger.Warn("bridge: unit event rejected", "unit", subj.Unit, "seq", ev.GetSeq(), "err", err)
	default:
		in.logger.Warn("bridge: recording unit event failed; the agent will redeliver", "unit", subj.Unit, "seq", ev.GetSeq(), "err", err)
		return
	}
	if m.Reply == "" {
		return
	}
	data, _ := proto.Marshal(ack)
	if err := m.Respond(data); err != nil {
		in.logger.Warn("bridge: event ack not sent", "unit", subj.Unit, "err", err)
	}
}

// record checks ev against its subject and records it; see the package doc
// for where each type goes.
func (in *intake) record(ctx context.Context, subj Subject, ev *logbookv1.EdgeEvent) error {
	switch {
	case ev.GetUnit() != subj.Unit:
		return fmt.Errorf("%w: event of unit %.80q on unit %s's subject", ErrInvalidEvent, ev.GetUnit(), subj.Unit)
	case ev.GetMethod() != subj.Method || ev.GetDomain() != subj.Domain:
		return fmt.Errorf("%w: event says %.80q.%.80q, subject says %s.%s", ErrInvalidEvent, ev.GetMethod(), ev.GetDomain(), subj.Method, subj.Domain)
	case len(ev.GetId()) != 16:
		return fmt.Errorf("%w: id is %d bytes, want 16", ErrInvalidEvent, len(ev.GetId()))
	}
	id, _ := uuid.FromBytes(ev.GetId())
	if id == uuid.Nil {
		return fmt.Errorf("%w: zero id", ErrInvalidEvent)
	}
	mt, ok := edgeTypes.Lookup(ev.GetType())
	if !ok {
		return fmt.Errorf("%w: unknown payload type %.80q", ErrInvalidEvent, ev.GetType())
	}
	payload := mt.New().Interface()
	if err := proto.Unmarshal(ev.GetData(), payload); err != nil {
		return fmt.Errorf("%w: payload %s: %v", ErrInvalidEvent, ev.GetType(), err)
	}
	md := events.Metadata{CausationID: id.String(), Principal: UnitPrincipal(subj.Unit)}
	hb, _ := payload.(*logbookv1.AgentHeartbeat)
	if err := in.presence.seen(ctx, subj.Unit, hb.GetAgentVersion(), md); err != nil {
		return in.refusal(err)
	}
	switch p := payload.(type) {
	case *logbookv1.AgentHeartbeat:
		if _, err := in.execute(ctx, subj.Unit, &logbookv1.RecordUnitHeartbeat{}, md); err != nil {
			return in.refusal(err)
		}
		if p.GetRelease() != "" {
			if _, err := in.execute(ctx, subj.Unit, &logbookv1.ReportUnitRelease{Release: p.GetRelease()}, md); err != nil {
				if !errors.Is(err, unit.ErrInvalidReport) {
					return in.refusal(err)
				}
				in.logger.Warn("bridge: unit reported an invalid release; ignored", "unit", subj.Unit, "err", err)
			}
		}
		return nil
	case *logbookv1.AgentCommandResult:
		return in.result(ctx, subj.Unit, &logbookv1.RecordUnitCommandResult{
			CommandId: p.GetCommandId(), ExitCode: p.GetExitCode(), Output: p.GetOutput(), Error: p.GetError(),
			OutputTruncated: p.GetOutputTruncated(),
		}, md)
	case *logbookv1.AgentCommandRefused:
		return in.result(ctx, subj.Unit, &logbookv1.RecordUnitCommandResult{
			CommandId: p.GetCommandId(), ExitCode: -1, Error: "refused by agent: " + p.GetReason(),
		}, md)
	case *logbookv1.AgentReading:
		return in.appendRaw(ctx, ReadingsCategory, subj.Unit, id, ev, md)
	case *logbookv1.AgentSyslogLine:
		return in.appendRaw(ctx, SyslogCategory, subj.Unit, id, ev, md)
	case *logbookv1.ReportProcessStatus:
		// A supervised process's status goes to its own entity,
		// process-<unit>.<method>.<domain>, named by the subject.
		stream, err := process.StreamName(subj.Unit, subj.Method, subj.Domain)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
		}
		_, err = in.host.ExecuteNoState(ctx, stream, p, md)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, actors.ErrUnknownCategory), errors.Is(err, process.ErrInvalidStatus), errors.Is(err, process.ErrInvalidID):
			return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
		}
		return err
	}
	return fmt.Errorf("%w: unhandled payload type %s", ErrInvalidEvent, ev.GetType())
}

// result records a command result. A result for a command that already
// finished is a redelivery (or came after the command expired): it is
// acknowledged as stored and changes nothing.
func (in *intake) result(ctx context.Context, u string, cmd *logbookv1.RecordUnitCommandResult, md events.Metadata) error {
	_, err := in.execute(ctx, u, cmd, md)
	if err == nil || errors.Is(err, unit.ErrCommandFinished) {
		return nil
	}
	return in.refusal(err)
}

// refusal turns the unit aggregate's permanent refusals into
// ErrInvalidEvent; other errors stay transient.
func (in *intake) refusal(err error) error {
	for _, perm := range []error{unit.ErrNotRegistered, unit.ErrDecommissioned, unit.ErrUnknownCommand, unit.ErrInvalidCommand, unit.ErrInvalidReport} {
		if errors.Is(err, perm) {
			return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
		}
	}
	return err
}

func (in *intake) appendRaw(ctx context.Context, category, u string, id uuid.UUID, ev *logbookv1.EdgeEvent, md events.Metadata) error {
	md.CausationID = ""
	_, err := in.store.Append(ctx, category+"-"+u, events.Any, events.Event{ID: id, Type: ev.GetType(), Data: ev.GetData(), Metadata: md})
	switch {
	case errors.Is(err, events.ErrDuplicateEventID), errors.Is(err, events.ErrInvalidEvent), errors.Is(err, events.ErrInvalidStreamName):
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	case err != nil:
		return fmt.Errorf("append to %s-%s: %w", category, u, err)
	}
	return nil
}

func (in *intake) execute(ctx context.Context, u string, cmd proto.Message, md events.Metadata) (actors.Result, error) {
	return in.host.ExecuteNoState(ctx, unit.Category+"-"+u, cmd, md)
}

// presence tracks which units are connected: a unit is connected from the
// first event the bridge receives from it until HeartbeatTimeout passes
// without one. Each such period is a session, recorded on the unit as
// RecordUnitConnected / RecordUnitDisconnected.
type presence struct {
	host      *actors.Host
	timeout   time.Duration
	now       func() time.Time
	logger    *slog.Logger
	onConnect func(unit string)

	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	id   string
	last time.Time
}

// seen notes that u was heard from; the first time in a session it records
// the connection (and only then is u tracked).
func (p *presence) seen(ctx context.Context, u, agentVersion string, md events.Metadata) error {
	now := p.now()
	p.mu.Lock()
	if s := p.sessions[u]; s != nil {
		s.last = now
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	id := uuid.NewString()
	if _, err := p.host.ExecuteNoState(ctx, unit.Category+"-"+u, &logbookv1.RecordUnitConnected{SessionId: id, AgentVersion: agentVersion}, md); err != nil {
		return err
	}
	p.mu.Lock()
	p.sessions[u] = &session{id: id, last: now}
	p.mu.Unlock()
	if p.onConnect != nil {
		p.onConnect(u)
	}
	return nil
}

// connected reports whether u is in a session.
func (p *presence) connected(u string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sessions[u] != nil
}

// sweep records the disconnection of every unit silent for the timeout, on
// each tick until ctx ends.
func (p *presence) sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := p.now()
		type gone struct{ unit, id string }
		var stale []gone
		p.mu.Lock()
		for u, s := range p.sessions {
			if now.Sub(s.last) >= p.timeout {
				stale = append(stale, gone{u, s.id})
				delete(p.sessions, u)
			}
		}
		p.mu.Unlock()
		for _, g := range stale {
			cmd := &logbookv1.RecordUnitDisconnected{SessionId: g.id, Reason: fmt.Sprintf("nothing heard for %v", p.timeout)}
			ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := p.host.ExecuteNoState(ectx, unit.Category+"-"+g.unit, cmd, events.Metadata{Principal: Principal})
			cancel()
			if err != nil && ctx.Err() == nil {
				p.logger.Warn("bridge: recording disconnection failed", "unit", g.unit, "err", err)
			}
		}
	}
}
