package bridge

import (
	"container/heap"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Principal is the principal of the aggregate commands the bridge executes
// on its own behalf (deliveries, expiries, connectivity).
const Principal = "logbook-bridge"

// lifecycleFilter selects the events the dispatcher tracks pending
// commands by.
var lifecycleFilter = events.Filter{
	Categories: []string{unit.Category},
	Types: []string{
		typeName(&logbookv1.UnitCommandIssued{}),
		typeName(&logbookv1.UnitCommandDelivered{}),
		typeName(&logbookv1.UnitCommandSucceeded{}),
		typeName(&logbookv1.UnitCommandFailed{}),
		typeName(&logbookv1.UnitCommandExpired{}),
		typeName(&logbookv1.UnitCommandCancelled{}),
	},
}

func typeName(m proto.Message) string { return string(m.ProtoReflect().Descriptor().FullName()) }

var lifecycleTypes = func() *events.Registry {
	r := new(events.Registry)
	r.Register(&logbookv1.UnitCommandIssued{}, &logbookv1.UnitCommandDelivered{}, &logbookv1.UnitCommandSucceeded{},
		&logbookv1.UnitCommandFailed{}, &logbookv1.UnitCommandExpired{}, &logbookv1.UnitCommandCancelled{})
	return r
}()

// pendingCmd is one command the dispatcher has not seen finish.
type pendingCmd struct {
	unit     string
	id       string
	position uint64
	issued   *logbookv1.UnitCommandIssued
	deadline time.Time
	// delivered: the agent stored it; only its expiry is left to watch.
	delivered bool
	// expiring: an ExpireUnitCommand is in flight; expireAt: not before.
	expiring bool
	expireAt time.Time
}

// unitQueue is one unit's pending commands in issue order, and its
// delivery state: at most one delivery in flight per unit, backing off
// exponentially while the unit does not answer.
type unitQueue struct {
	name     string
	cmds     []*pendingCmd
	attempt  int
	next     time.Time
	inflight bool

	// Scheduling bookkeeping (see dispatcher.schedule).
	//
	// wakeAt is when the unit next needs looking at (a backoff ends, a
	// deadline or an expiry retry comes), zero when never; heapIdx is
	// its index in the dispatcher's timer heap, -1 when not in it.
	wakeAt  time.Time
	heapIdx int
	// dirty: in dispatcher.dirty. starved: in dispatcher.starved (it had
	// something to start when MaxInFlight was reached).
	dirty, starved bool
}

type outcomeKind int

const (
	// retry: no ACK (no responder, timeout, bad reply, store error).
	outcomeRetry outcomeKind = iota
	// delivered: ACKed and recorded delivered.
	outcomeDelivered
	// done: the command is finished (refused and recorded failed, or found
	// finished or unknown) and leaves the queue.
	outcomeDone
)

type outcome struct {
	unit, id string
	expiry   bool
	kind     outcomeKind
	err      error
}

// dispatcher delivers pending commands. Its state is owned by the run
// goroutine; everything else talks to it through channels.
type dispatcher struct {
	nc     *nats.Conn
	host   *actors.Host
	store  events.Store
	key    ed25519.PrivateKey
	cfg    DispatchConfig
	logger *slog.Logger
	now    func() time.Time

	updates  chan events.Event
	outcomes chan outcome
	wakes    chan string
	calls    chan func()
	// stopped is closed when run returns.
	stopped chan struct{}

	units    map[string]*unitQueue
	byID     map[[2]string]*pendingCmd
	lastPos  uint64
	inflight int
	// The units schedule must look at: dirty ones (something changed),
	// starved ones (waiting for a free delivery slot) and, through
	// timers, those whose wakeAt has come. Looking only at these keeps
	// each step of the run loop proportional to what changed, not to
	// the number of units with pending commands: a full scan per event
	// made a backlog quadratic to drain, exactly when the dispatcher was
	// already behind.
	dirty   []*unitQueue
	starved []*unitQueue
	timers  wakeHeap
	// jobs hands deliveries and expiries to idle workers (see start).
	jobs chan func(context.Context) outcome
	// caughtUp is set once the log as it was at start has been applied;
	// nothing is scheduled before.
	caughtUp bool
}

func newDispatcher(nc *nats.Conn, host *actors.Host, store events.Store, key ed25519.PrivateKey, cfg DispatchConfig, logger *slog.Logger, now func() time.Time) *dispatcher {
	return &dispatcher{
		nc: nc, host: host, store: store, key: key, cfg: cfg, logger: logger, now: now,
		updates:  make(chan events.Event, 256),
		outcomes: make(chan outcome, 64),
		wakes:    make(chan string, 1024),
		calls:    make(chan func()),
		stopped:  make(chan struct{}),
		units:    map[string]*unitQueue{},
		byID:     map[[2]string]*pendingCmd{},
		lastPos:  cfg.StartPosition,
		jobs:     make(chan func(context.Context) outcome),
	}
}

// follow feeds the run loop with lifecycle events from the log, from the
// start position, resubscribing after errors, until ctx ends. It first
// reads what the log already holds and then tells the run loop it has
// caught up: until then nothing is delivered, so a restarted dispatcher
// does not resend a command whose delivery it has not read yet.
func (d *dispatcher) follow(ctx context.Context) {
	from := d.cfg.StartPosition
	for attempt := 0; ; attempt++ {
		caughtUp := true
		for ev, err := range d.store.ReadAll(ctx, from, lifecycleFilter) {
			if err != nil {
				if ctx.Err() == nil {
					d.logger.Warn("bridge: dispatcher catch-up failed; retrying", "from", from, "err", err)
				}
				caughtUp = false
				break
			}
			select {
			case d.updates <- ev:
				from = ev.Position + 1
			case <-ctx.Done():
				return
			}
		}
		if caughtUp {
			// The run loop picks among ready channels at random, so it may
			// take this call while earlier updates still sit in the
			// buffer: apply them first. Nothing else sends updates, and
			// this goroutine is blocked here, so the buffer holds exactly
			// the rest of the catch-up.
			markCaughtUp := func() {
				for len(d.updates) > 0 {
					d.apply(<-d.updates)
				}
				d.caughtUp = true
				for _, q := range d.units {
					d.markDirty(q)
				}
			}
			select {
			case d.calls <- markCaughtUp:
			case <-ctx.Done():
				return
			}
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff(attempt+1, d.cfg.BackoffBase, d.cfg.BackoffMax)):
		}
	}
	for attempt := 0; ; attempt++ {
		for ev, err := range d.store.Subscribe(ctx, from, lifecycleFilter) {
			if err != nil {
				if ctx.Err() == nil {
					d.logger.Warn("bridge: dispatcher subscription failed; resubscribing", "from", from, "err", err)
				}
				break
			}
			attempt = 0
			select {
			case d.updates <- ev:
				from = ev.Position + 1
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff(attempt+1, d.cfg.BackoffBase, d.cfg.BackoffMax)):
		}
	}
}

// run owns the dispatcher's state until ctx ends; it then waits for the
// deliveries it started.
func (d *dispatcher) run(ctx context.Context) {
	defer close(d.stopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer func() {
		for d.inflight > 0 {
			<-d.outcomes
			d.inflight--
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-d.updates:
			d.apply(ev)
		case o := <-d.outcomes:
			d.inflight--
			d.settle(o)
		case u := <-d.wakes:
			if q := d.units[u]; q != nil {
				q.attempt, q.next = 0, time.Time{}
				d.markDirty(q)
			}
		case f := <-d.calls:
			f()
			if !d.caughtUp {
				continue
			}
		case <-timer.C:
		}
		if !d.caughtUp {
			continue
		}
		wait := d.schedule(ctx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// apply folds one lifecycle event into the pending set.
func (d *dispatcher) apply(ev events.Event) {
	d.lastPos = ev.Position
	_, name, err := events.SplitStream(ev.Stream)
	if err != nil {
		return
	}
	msg, err := lifecycleTypes.Decode(ev)
	if err != nil {
		d.logger.Error("bridge: undecodable command lifecycle event", "stream", ev.Stream, "position", ev.Position, "err", err)
		return
	}
	var id string
	switch m := msg.(type) {
	case *logbookv1.UnitCommandIssued:
		k := [2]string{name, m.GetCommandId()}
		if d.byID[k] != nil {
			return
		}
		c := &pendingCmd{unit: name, id: m.GetCommandId(), position: ev.Position, issued: m, deadline: m.GetDeadline().AsTime()}
		d.byID[k] = c
		q := d.units[name]
		if q == nil {
			q = &unitQueue{name: name, heapIdx: -1}
			d.units[name] = q
		}
		q.cmds = append(q.cmds, c)
		d.markDirty(q)
		return
	case *logbookv1.UnitCommandDelivered:
		if c := d.byID[[2]string{name, m.GetCommandId()}]; c != nil {
			c.delivered = true
			d.markDirty(d.units[name])
		}
		return
	case *logbookv1.UnitCommandSucceeded:
		id = m.GetCommandId()
	case *logbookv1.UnitCommandFailed:
		id = m.GetCommandId()
	case *logbookv1.UnitCommandExpired:
		id = m.GetCommandId()
	case *logbookv1.UnitCommandCancelled:
		id = m.GetCommandId()
	default:
		return
	}
	d.remove(name, id)
}

func (d *dispatcher) remove(unitName, id string) {
	k := [2]string{unitName, id}
	if d.byID[k] == nil {
		return
	}
	delete(d.byID, k)
	q := d.units[unitName]
	for i, c := range q.cmds {
		if c.id == id {
			q.cmds = append(q.cmds[:i], q.cmds[i+1:]...)
			break
		}
	}
	if len(q.cmds) == 0 && !q.inflight {
		d.drop(q)
		return
	}
	d.markDirty(q)
}

// drop forgets q, which has no command left and no delivery in flight.
// The dirty and starved lists may still hold it; schedule skips units
// that are no longer in d.units.
func (d *dispatcher) drop(q *unitQueue) {
	delete(d.units, q.name)
	if q.heapIdx >= 0 {
		heap.Remove(&d.timers, q.heapIdx)
	}
}

// markDirty has the next schedule look at q.
func (d *dispatcher) markDirty(q *unitQueue) {
	if !q.dirty {
		q.dirty = true
		d.dirty = append(d.dirty, q)
	}
}

// settle applies the outcome of a delivery or expiry.
func (d *dispatcher) settle(o outcome) {
	q := d.units[o.unit]
	c := d.byID[[2]string{o.unit, o.id}]
	now := d.now()
	if o.expiry {
		if c == nil {
			return
		}
		c.expiring = false
		if o.kind == outcomeDone {
			d.remove(o.unit, o.id)
			return
		}
		c.expireAt = now.Add(backoff(1, d.cfg.BackoffBase, d.cfg.BackoffMax))
		if q != nil {
			d.markDirty(q)
		}
		return
	}
	if q == nil {
		return
	}
	q.inflight = false
	switch o.kind {
	case outcomeDelivered:
		q.attempt, q.next = 0, time.Time{}
		if c != nil {
			c.delivered = true
		}
	case outcomeDone:
		q.attempt, q.next = 0, time.Time{}
		d.remove(o.unit, o.id)
	default:
		q.attempt++
		q.next = now.Add(backoff(q.attempt, d.cfg.BackoffBase, d.cfg.BackoffMax))
		d.logger.Debug("bridge: command not acknowledged; will redeliver", "unit", o.unit, "command", o.id, "attempt", q.attempt, "next", q.next, "err", o.err)
	}
	if len(q.cmds) == 0 {
		d.drop(q)
		return
	}
	d.markDirty(q)
}

// schedule starts the deliveries and expiries that are due and returns how
// long to wait before the next one is. It looks only at the units that
// may have something to do: those whose timer has come, those waiting for
// a delivery slot (when one is free) and those marked dirty since the
// last call.
func (d *dispatcher) schedule(ctx context.Context) time.Duration {
	now := d.now()
	for len(d.timers) > 0 && !d.timers[0].wakeAt.After(now) {
		q := heap.Pop(&d.timers).(*unitQueue)
		q.wakeAt = time.Time{}
		d.markDirty(q)
	}
	// Units waiting for a slot, oldest first, only while slots are free:
	// under a backlog each outcome frees one slot and costs one look, not
	// a look at every waiting unit.
	for len(d.starved) > 0 && d.inflight < d.cfg.MaxInFlight {
		q := d.starved[0]
		d.starved[0] = nil
		d.starved = d.starved[1:]
		q.starved = false
		d.look(ctx, q, now)
	}
	// look marks nothing dirty, so the list does not grow under the loop.
	for _, q := range d.dirty {
		q.dirty = false
		d.look(ctx, q, now)
	}
	clear(d.dirty)
	d.dirty = d.dirty[:0]
	if len(d.timers) == 0 {
		return time.Hour
	}
	return max(d.timers[0].wakeAt.Sub(now), time.Millisecond)
}

// look starts what is due for unit q (its next delivery, expiries) as far
// as MaxInFlight allows and sets q's timer to when it next needs looking
// at.
func (d *dispatcher) look(ctx context.Context, q *unitQueue, now time.Time) {
	if d.units[q.name] != q {
		return // dropped after it was listed
	}
	var wake time.Time
	soon := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	starved := false
	var head *pendingCmd
	for _, c := range q.cmds {
		if now.Before(c.deadline) {
			soon(c.deadline)
			if head == nil && !c.delivered {
				head = c
			}
			continue
		}
		if c.expiring {
			continue
		}
		if now.Before(c.expireAt) {
			soon(c.expireAt)
			continue
		}
		if d.inflight < d.cfg.MaxInFlight {
			c.expiring = true
			d.start(ctx, func(ctx context.Context) outcome { return d.expire(ctx, c) })
		} else {
			starved = true
		}
	}
	if head != nil && !q.inflight {
		switch {
		case now.Before(q.next):
			soon(q.next)
		case d.inflight < d.cfg.MaxInFlight:
			q.inflight = true
			name := q.name
			d.start(ctx, func(ctx context.Context) outcome { return d.deliver(ctx, name, head) })
		default:
			starved = true
		}
	}
	if starved && !q.starved {
		q.starved = true
		d.starved = append(d.starved, q)
	}
	d.setTimer(q, wake)
}

// setTimer makes wake (zero: none) q's one entry in the timer heap.
func (d *dispatcher) setTimer(q *unitQueue, wake time.Time) {
	switch {
	case wake.IsZero():
		if q.heapIdx >= 0 {
			heap.Remove(&d.timers, q.heapIdx)
		}
		q.wakeAt = time.Time{}
	case q.heapIdx >= 0:
		q.wakeAt = wake
		heap.Fix(&d.timers, q.heapIdx)
	default:
		q.wakeAt = wake
		heap.Push(&d.timers, q)
	}
}

// wakeHeap orders units by wakeAt (container/heap); each unit is in it at
// most once, at heapIdx.
type wakeHeap []*unitQueue

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].wakeAt.Before(h[j].wakeAt) }
func (h wakeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *wakeHeap) Push(x any) {
	q := x.(*unitQueue)
	q.heapIdx = len(*h)
	*h = append(*h, q)
}
func (h *wakeHeap) Pop() any {
	old := *h
	q := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	q.heapIdx = -1
	return q
}

// start runs f (a delivery or an expiry) off the run loop and sends its
// outcome back. It hands f to an idle worker when there is one and
// starts a worker otherwise, so at most MaxInFlight workers are busy and
// a worker is reused across jobs: a delivery runs on a deep stack
// (signing, NATS request, the entity's append), and a fresh goroutine per
// delivery grew its stack by copying every time.
func (d *dispatcher) start(ctx context.Context, f func(context.Context) outcome) {
	d.inflight++
	select {
	case d.jobs <- f:
	default:
		go d.worker(ctx, f)
	}
}

// workerIdle is how long a delivery worker waits for another job before it
// exits.
const workerIdle = 10 * time.Second

func (d *dispatcher) worker(ctx context.Context, f func(context.Context) outcome) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		// The run loop counts f in flight until it has the outcome, and
		// it drains outcomes before it returns, so this send completes.
		d.outcomes <- f(ctx)
		idle.Reset(workerIdle)
		select {
		case f = <-d.jobs:
		case <-idle.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// deliver sends c to its unit and waits for the ACK. It reads only c's
// immutable fields.
func (d *dispatcher) deliver(ctx context.Context, unitName string, c *pendingCmd) outcome {
	o := outcome{unit: unitName, id: c.id, kind: outcomeRetry}
	ec, err := SignCommand(unitName, c.issued, d.key)
	if err != nil {
		// Cannot happen for commands the unit aggregate accepted; record
		// it rather than retrying forever.
		return d.recordRefusal(ctx, o, "undeliverable: "+err.Error())
	}
	subject, _ := CommandSubject(unitName, ec.GetMethod(), ec.GetDomain())
	data, err := proto.Marshal(ec)
	if err != nil {
		o.err = err
		return o
	}
	rctx, cancel := context.WithTimeout(ctx, d.cfg.AckTimeout)
	reply, err := d.nc.RequestWithContext(rctx, subject, data)
	cancel()
	if err != nil {
		o.err = err
		return o
	}
	ack := new(logbookv1.EdgeCommandAck)
	if err := proto.Unmarshal(reply.Data, ack); err != nil || ack.GetCommandId() != c.id {
		o.err = fmt.Errorf("bad ack from %s for %s: %q, %v", unitName, c.id, ack.GetCommandId(), err)
		d.logger.Warn("bridge: bad command ack", "unit", unitName, "command", c.id, "err", o.err)
		return o
	}
	if !ack.GetStored() {
		reason := ack.GetRefusal()
		if reason == "" {
			reason = "no reason given"
		}
		return d.recordRefusal(ctx, o, "refused by agent: "+reason)
	}
	_, err = d.execute(ctx, unitName, &logbookv1.MarkUnitCommandDelivered{CommandId: c.id}, c.id)
	switch {
	case err == nil:
		o.kind = outcomeDelivered
	case gone(err):
		o.kind = outcomeDone
	default:
		o.err = err
		d.logger.Warn("bridge: recording delivery failed; will redeliver", "unit", unitName, "command", c.id, "err", err)
	}
	return o
}

func (d *dispatcher) recordRefusal(ctx context.Context, o outcome, why string) outcome {
	_, err := d.execute(ctx, o.unit, &logbookv1.RecordUnitCommandResult{CommandId: o.id, ExitCode: -1, Error: why}, o.id)
	switch {
	case err == nil || gone(err):
		o.kind = outcomeDone
	default:
		o.err = err
		d.logger.Warn("bridge: recording refusal failed; will redeliver", "unit", o.unit, "command", o.id, "err", err)
	}
	return o
}

func (d *dispatcher) expire(ctx context.Context, c *pendingCmd) outcome {
	o := outcome{unit: c.unit, id: c.id, expiry: true}
	_, err := d.execute(ctx, c.unit, &logbookv1.ExpireUnitCommand{CommandId: c.id}, c.id)
	switch {
	case err == nil || gone(err):
		o.kind = outcomeDone
	default:
		o.err = err
		d.logger.Warn("bridge: expiring command failed; will retry", "unit", c.unit, "command", c.id, "err", err)
	}
	return o
}

func (d *dispatcher) execute(ctx context.Context, unitName string, cmd proto.Message, causation string) (actors.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.ExecuteTimeout)
	defer cancel()
	return d.host.ExecuteNoState(ctx, unit.Category+"-"+unitName, cmd, events.Metadata{CausationID: causation, Principal: Principal})
}

// gone reports whether err says the command needs nothing more from the
// dispatcher: it finished, or the unit no longer knows or takes it.
func gone(err error) bool {
	return errors.Is(err, unit.ErrCommandFinished) || errors.Is(err, unit.ErrUnknownCommand) ||
		errors.Is(err, unit.ErrDecommissioned) || errors.Is(err, unit.ErrNotRegistered)
}

// wake asks for an immediate delivery attempt to unitName (it connected).
// It never blocks: a wake that does not fit is dropped (the backoff
// timer still runs).
func (d *dispatcher) wake(unitName string) {
	select {
	case d.wakes <- unitName:
	default:
	}
}

// call runs f on the run goroutine; false when ctx ended or the
// dispatcher stopped first.
func (d *dispatcher) call(ctx context.Context, f func()) bool {
	done := make(chan struct{})
	select {
	case d.calls <- func() { f(); close(done) }:
	case <-ctx.Done():
		return false
	case <-d.stopped:
		return false
	}
	<-done
	return true
}

// checkpoint is the position a restarted dispatcher must start from to see
// every command still pending: the position of the oldest pending
// UnitCommandIssued, or one past the last event seen when none is.
func (d *dispatcher) checkpoint() uint64 {
	cp := d.lastPos + 1
	for _, c := range d.byID {
		cp = min(cp, c.position)
	}
	return cp
}

// backoff returns the wait before delivery attempt attempt+1 (attempt >=
// 1): base doubled per attempt, capped at limit, with "equal jitter" (half
// fixed, half uniformly random), so units that went away together do not
// come back in lockstep.
func backoff(attempt int, base, limit time.Duration) time.Duration {
	d := limit
	attempt = max(attempt, 1)
	if attempt < 63 {
		if s := base << (attempt - 1); s > 0 && s < limit && s>>(attempt-1) == base {
			d = s
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
