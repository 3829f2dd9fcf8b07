package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// The command log (an embedded store in <data>/commands) holds one stream
// per command, "command-<command id>":
//
//	version 1: logbook.v1.EdgeCommand, appended before the command is acked
//	version 2: commandStartedType, appended just before the command starts
//	last:      logbook.v1.AgentCommandResult or logbook.v1.AgentCommandRefused,
//	           appended after the same result went into the spool
//
// A command whose stream exists was received before: it is acked again and
// not run again. A stream without a result after a restart is settled by
// recoverCommands.
const (
	commandStartedType = "logbook.agent.v1.CommandStarted" // JSON commandStarted
	commandType        = "logbook.v1.EdgeCommand"
	resultType         = "logbook.v1.AgentCommandResult"
	refusedType        = "logbook.v1.AgentCommandRefused"
)

// errRestartedWhileRunning is the error reported for a command that was
// running when the agent died: it is not run again.
const errRestartedWhileRunning = "agent restarted while running"

type commandStarted struct {
	StartedAt time.Time `json:"started_at"`
	// SpoolHead is the spool's head when the command started: its result,
	// if it was spooled before a crash, is after this.
	SpoolHead uint64 `json:"spool_head"`
}

// method is one kind of command (the <method> of the subject).
type method interface {
	// check refuses (with an error from refuse) a command this method will
	// not run; it is called before the command is stored and acked.
	check(cmd *logbookv1.EdgeCommand) error
	// run executes the command; the caller fills command id and times.
	run(ctx context.Context, cmd *logbookv1.EdgeCommand) *logbookv1.AgentCommandResult
}

// commander receives, stores, acknowledges and runs commands.
type commander struct {
	a   *Agent
	log *embedded.Store

	mu     sync.RWMutex // held (read) while a message is handled; Close takes it to stop new work
	closed bool
	wg     sync.WaitGroup // running commands
}

func streamOf(commandID string) string { return "command-" + commandID }

// handle is the NATS callback for <unit>.command.>.
func (c *commander) handle(m *nats.Msg) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return // not acked: the dispatcher redelivers after the restart
	}
	ctx := c.a.workCtx
	var cmd logbookv1.EdgeCommand
	if err := proto.Unmarshal(m.Data, &cmd); err != nil {
		c.refuse(ctx, m, &cmd, "malformed command: "+err.Error())
		return
	}
	if err := c.check(&cmd, time.Now()); err != nil {
		var r *refusal
		if errors.As(err, &r) {
			c.refuse(ctx, m, &cmd, r.reason)
			return
		}
		c.a.logger.Error("command: check", "command_id", cmd.GetCommandId(), "err", err)
		return
	}
	stored, err := c.store(ctx, &cmd)
	if err != nil {
		// Not acked: the dispatcher redelivers.
		c.a.logger.Error("command: store", "command_id", cmd.GetCommandId(), "err", err)
		return
	}
	c.reply(m, &logbookv1.EdgeCommandAck{CommandId: cmd.GetCommandId(), Stored: true})
	if !stored {
		c.a.logger.Info("command: already received; acked again, not run again", "command_id", cmd.GetCommandId())
		return
	}
	c.a.logger.Info("command: received", "command_id", cmd.GetCommandId(), "method", cmd.GetMethod(), "domain", cmd.GetDomain())
	c.start(&cmd)
}

// check returns a refusal for a command the agent will not store.
func (c *commander) check(cmd *logbookv1.EdgeCommand, now time.Time) error {
	switch {
	case cmd.GetUnit() != c.a.cfg.Unit:
		return refuse("addressed to unit %q, this is %q", cmd.GetUnit(), c.a.cfg.Unit)
	case len(cmd.GetSignature()) == 0:
		return refuse("unsigned")
	case !cmd.VerifySignature(c.a.id.ControlPlaneKey):
		if cmd.GetKeyId() != logbookv1.KeyID(c.a.id.ControlPlaneKey) {
			return refuse("bad signature: signed by unknown key %q", cmd.GetKeyId())
		}
		return refuse("bad signature")
	case cmd.GetDeadline() == nil:
		return refuse("no deadline")
	case !now.Before(cmd.GetDeadline().AsTime()):
		return refuse("deadline passed at %s", cmd.GetDeadline().AsTime().Format(time.RFC3339))
	}
	if err := events.ValidateStream(streamOf(cmd.GetCommandId())); err != nil {
		return refuse("invalid command id %q", cmd.GetCommandId())
	}
	m, ok := c.a.methods[cmd.GetMethod()]
	if !ok {
		return refuse("unknown method %q", cmd.GetMethod())
	}
	return m.check(cmd)
}

func (c *commander) reply(m *nats.Msg, ack *logbookv1.EdgeCommandAck) {
	if m.Reply == "" {
		return
	}
	data, _ := proto.Marshal(ack)
	if err := m.Respond(data); err != nil {
		c.a.logger.Warn("command: ack not sent", "command_id", ack.GetCommandId(), "err", err)
	}
}

// refuse answers a command the agent will not run and records the refusal.
func (c *commander) refuse(ctx context.Context, m *nats.Msg, cmd *logbookv1.EdgeCommand, reason string) {
	c.a.logger.Warn("command: refused", "command_id", cmd.GetCommandId(), "method", cmd.GetMethod(), "reason", reason)
	c.reply(m, &logbookv1.EdgeCommandAck{CommandId: cmd.GetCommandId(), Refusal: reason})
	msg := &logbookv1.AgentCommandRefused{CommandId: cmd.GetCommandId(), Reason: reason}
	if _, err := c.a.spool.Emit(ctx, commandEventMethod(cmd), cmd.GetDomain(), msg); err != nil {
		c.a.logger.Error("command: refusal not spooled", "command_id", cmd.GetCommandId(), "err", err)
	}
}

// commandEventMethod is the method of the events about cmd: its own method,
// or "command" when it has none.
func commandEventMethod(cmd *logbookv1.EdgeCommand) string {
	if cmd.GetMethod() == "" {
		return "command"
	}
	return cmd.GetMethod()
}

// store appends cmd as its stream's first event; stored is false when the
// command was received before.
func (c *commander) store(ctx context.Context, cmd *logbookv1.EdgeCommand) (stored bool, err error) {
	data, err := proto.Marshal(cmd)
	if err != nil {
		return false, err
	}
	_, err = c.log.Append(ctx, streamOf(cmd.GetCommandId()), events.NoStream,
		events.Event{ID: events.NewID(), Type: commandType, Data: data})
	if errors.Is(err, events.ErrWrongExpectedVersion) {
		return false, nil
	}
	return err == nil, err
}

// start runs cmd in its own goroutine, unless the agent is closing.
func (c *commander) start(cmd *logbookv1.EdgeCommand) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.execute(c.a.workCtx, cmd)
	}()
}

// execute runs a stored command that has not started: refused if its
// deadline passed meanwhile, else marked started, run, and its result
// spooled and recorded.
func (c *commander) execute(ctx context.Context, cmd *logbookv1.EdgeCommand) {
	stream := streamOf(cmd.GetCommandId())
	if !time.Now().Before(cmd.GetDeadline().AsTime()) {
		reason := "deadline passed before the command started"
		c.resolve(ctx, cmd, 1, refusedType, &logbookv1.AgentCommandRefused{CommandId: cmd.GetCommandId(), Reason: reason})
		return
	}
	started := commandStarted{StartedAt: time.Now().UTC(), SpoolHead: c.a.spool.Head()}
	data, _ := json.Marshal(started)
	if _, err := c.log.Append(ctx, stream, events.Exactly(1),
		events.Event{ID: events.NewID(), Type: commandStartedType, Data: data}); err != nil {
		c.a.logger.Error("command: not started, could not record the start", "command_id", cmd.GetCommandId(), "err", err)
		return
	}
	res := c.a.methods[cmd.GetMethod()].run(ctx, cmd)
	res.CommandId = cmd.GetCommandId()
	res.StartedAt = timestamppb.New(started.StartedAt)
	res.FinishedAt = timestamppb.Now()
	c.a.logger.Info("command: finished", "command_id", cmd.GetCommandId(), "exit_code", res.GetExitCode(), "error", res.GetError())
	c.resolve(ctx, cmd, 2, resultType, res)
}

// resolve spools the outcome of cmd and then records it in the command's
// stream at version+1. A crash between the two is caught by recoverCommands,
// which finds the spooled result.
func (c *commander) resolve(ctx context.Context, cmd *logbookv1.EdgeCommand, version uint64, typ string, msg proto.Message) {
	// The outcome is recorded even when ctx (the agent's work) is being
	// cancelled: the spool is still open until the commands are done.
	ctx = context.WithoutCancel(ctx)
	if _, err := c.a.spool.Emit(ctx, commandEventMethod(cmd), cmd.GetDomain(), msg); err != nil {
		c.a.logger.Error("command: result not spooled", "command_id", cmd.GetCommandId(), "err", err)
		return
	}
	c.record(ctx, cmd.GetCommandId(), version, typ, msg)
}

func (c *commander) record(ctx context.Context, commandID string, version uint64, typ string, msg proto.Message) {
	data, _ := proto.Marshal(msg)
	if _, err := c.log.Append(ctx, streamOf(commandID), events.Exactly(version),
		events.Event{ID: events.NewID(), Type: typ, Data: data}); err != nil {
		c.a.logger.Error("command: outcome not recorded", "command_id", commandID, "err", err)
	}
}

type pendingCommand struct {
	cmd      *logbookv1.EdgeCommand
	position uint64
	started  *commandStarted
}

// recoverCommands settles the commands of an earlier run that have no
// outcome: one that had started is reported failed with
// errRestartedWhileRunning (unless its result reached the spool before the
// crash), one that had not is run (or refused if its deadline passed).
// It runs before the agent subscribes to commands.
func (c *commander) recoverCommands(ctx context.Context) error {
	pending := map[string]*pendingCommand{}
	for ev, err := range c.log.ReadAll(ctx, 1, events.Filter{}) {
		if err != nil {
			return fmt.Errorf("read command log: %w", err)
		}
		switch ev.Type {
		case commandType:
			var cmd logbookv1.EdgeCommand
			if err := proto.Unmarshal(ev.Data, &cmd); err != nil {
				return fmt.Errorf("command log at %d: %w", ev.Position, err)
			}
			pending[ev.Stream] = &pendingCommand{cmd: &cmd, position: ev.Position}
		case commandStartedType:
			if p := pending[ev.Stream]; p != nil {
				p.started = new(commandStarted)
				if err := json.Unmarshal(ev.Data, p.started); err != nil {
					return fmt.Errorf("command log at %d: %w", ev.Position, err)
				}
			}
		default: // an outcome
			delete(pending, ev.Stream)
		}
	}
	list := make([]*pendingCommand, 0, len(pending))
	for _, p := range pending {
		list = append(list, p)
	}
	slices.SortFunc(list, func(a, b *pendingCommand) int { return cmp.Compare(a.position, b.position) })
	for _, p := range list {
		cmd := p.cmd
		if p.started == nil {
			c.a.logger.Info("command: running a command received before the restart", "command_id", cmd.GetCommandId())
			c.start(cmd)
			continue
		}
		spooled, err := c.findSpooledResult(ctx, cmd.GetCommandId(), p.started.SpoolHead+1)
		if err != nil {
			return err
		}
		if spooled != nil {
			c.record(ctx, cmd.GetCommandId(), 2, resultType, spooled)
			continue
		}
		c.a.logger.Warn("command: was running when the agent stopped; reporting it failed", "command_id", cmd.GetCommandId())
		c.resolve(ctx, cmd, 2, resultType, &logbookv1.AgentCommandResult{
			CommandId:  cmd.GetCommandId(),
			ExitCode:   -1,
			StartedAt:  timestamppb.New(p.started.StartedAt),
			FinishedAt: timestamppb.Now(),
			Error:      errRestartedWhileRunning,
		})
	}
	return nil
}

// findSpooledResult looks for the AgentCommandResult of commandID in the
// spool from seq from on.
func (c *commander) findSpooledResult(ctx context.Context, commandID string, from uint64) (*logbookv1.AgentCommandResult, error) {
	for e, err := range c.a.spool.Read(ctx, from) {
		if err != nil {
			return nil, err
		}
		if e.GetType() != resultType {
			continue
		}
		var res logbookv1.AgentCommandResult
		if proto.Unmarshal(e.GetData(), &res) == nil && res.GetCommandId() == commandID {
			return &res, nil
		}
	}
	return nil, nil
}

// close stops taking commands and waits for running ones; their contexts
// are cancelled by the agent first.
func (c *commander) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
}
