package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Remote command defaults and limits.
const (
	// DefaultCommandMethod is the method of a RunCommand without one:
	// shellcommand, whose domain is the program to run.
	DefaultCommandMethod  = "shellcommand"
	DefaultCommandTimeout = time.Hour
	MaxCommandTimeout     = 7 * 24 * time.Hour
	// MaxCommandTargets bounds the units one RunCommand or WaitCommand
	// names or selects.
	MaxCommandTargets = 10000
	// commandWorkers is how many units RunCommand issues to at once.
	commandWorkers = 8
)

// commandService implements logbookv1connect.CommandServiceHandler.
type commandService struct{ s *Server }

func (c commandService) RunCommand(ctx context.Context, req *connect.Request[logbookv1.RunCommandRequest]) (*connect.Response[logbookv1.RunCommandResponse], error) {
	m := req.Msg
	method, domain, args := orDefault(m.GetMethod(), DefaultCommandMethod), m.GetDomain(), m.GetArgs()
	if domain == "" {
		// "run uname -a": the program is the domain, the rest its args.
		if len(args) == 0 || args[0] == "" {
			return nil, invalidf("domain: empty; name the program (for %s, the domain or the first argument)", method)
		}
		domain, args = args[0], args[1:]
	}
	if err := unit.ValidateToken(method); err != nil {
		return nil, invalidf("method: %v", err)
	}
	if err := unit.ValidateToken(domain); err != nil {
		return nil, invalidf("domain: %v", err)
	}
	size := len(m.GetPayload())
	for _, a := range args {
		size += len(a)
	}
	if size > unit.MaxCommandInputBytes {
		return nil, invalidf("args and payload: %d bytes, at most %d", size, unit.MaxCommandInputBytes)
	}
	timeout := time.Duration(m.GetTimeoutSeconds()) * time.Second
	switch {
	case timeout == 0:
		timeout = DefaultCommandTimeout
	case timeout > MaxCommandTimeout:
		return nil, invalidf("timeout_seconds %d: at most %d (%v)", m.GetTimeoutSeconds(), int64(MaxCommandTimeout/time.Second), MaxCommandTimeout)
	}
	id := m.GetCommandId()
	if id == "" {
		id = events.NewID().String()
	} else if err := unit.ValidateCommandID(id); err != nil {
		return nil, err
	}
	targets, err := c.s.commandTargets(ctx, m.GetUnits(), m.GetSelector())
	if err != nil {
		return nil, err
	}
	cmd := &logbookv1.IssueUnitCommand{
		CommandId: id,
		Method:    method,
		Domain:    domain,
		Args:      args,
		Payload:   m.GetPayload(),
		Deadline:  timestamppb.New(c.s.d.Now().Add(timeout)),
		// No signature: the dispatcher signs each command with the
		// control plane's key when it delivers it (bridge.SignCommand).
	}
	issued := make([]*logbookv1.IssuedCommand, len(targets))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(commandWorkers, len(targets)) {
		wg.Go(func() {
			for i := range work {
				issued[i] = c.s.issue(ctx, targets[i], cmd)
			}
		})
	}
	for i := range targets {
		work <- i
	}
	close(work)
	wg.Wait()
	return connect.NewResponse(&logbookv1.RunCommandResponse{CommandId: id, Issued: issued}), nil
}

// issue issues cmd to one unit. A repeated request with the same command
// id and the same command counts as issued (idempotency).
func (s *Server) issue(ctx context.Context, name string, cmd *logbookv1.IssueUnitCommand) *logbookv1.IssuedCommand {
	out := &logbookv1.IssuedCommand{Unit: name}
	res, err := s.execute(ctx, unit.Category+"-"+name, cmd)
	if errors.Is(err, unit.ErrDuplicateCommand) {
		err = s.sameCommand(ctx, name, cmd)
	}
	if err != nil {
		out.Error = connect.CodeOf(ConnectError(ctx, s.d.Logger, "issue command", err)).String() + ": " + userMessage(err)
		return out
	}
	out.Position = res.Appended.LastPosition
	return out
}

// sameCommand checks that the command the unit already has under cmd's id
// is cmd (a retried request), not another command reusing the id.
func (s *Server) sameCommand(ctx context.Context, name string, cmd *logbookv1.IssueUnitCommand) error {
	st, _, err := s.readUnit(ctx, name)
	if err != nil {
		return err
	}
	have, _ := unit.FindCommand(st, cmd.GetCommandId())
	if have != nil && have.GetMethod() == cmd.GetMethod() && have.GetDomain() == cmd.GetDomain() &&
		slices.Equal(have.GetArgs(), cmd.GetArgs()) && string(have.GetPayload()) == string(cmd.GetPayload()) {
		return nil
	}
	return &apiError{kind: unit.ErrDuplicateCommand,
		msg: fmt.Sprintf("unit %s already has another command with id %s; choose a new id", name, cmd.GetCommandId())}
}

// commandTargets returns the units a command goes to, sorted: the listed
// ones, or the active units the selector matches in the fleet read model.
func (s *Server) commandTargets(ctx context.Context, names []string, selector string) ([]string, error) {
	switch {
	case len(names) > 0 && selector != "":
		return nil, invalidf("units and selector: give one of them, not both")
	case len(names) > 0:
		return checkUnitNames(names)
	case strings.TrimSpace(selector) == "":
		return nil, invalidf("units or selector: required (unit names, or a label selector such as \"site=north\")")
	}
	if _, err := readmodel.ParseSelector(selector); err != nil {
		return nil, invalidf("selector: %v (want e.g. \"site=north,role!=spare,gpu\")", err)
	}
	var out []string
	after := ""
	for {
		units, err := readmodel.ListUnits(ctx, s.d.Models, readmodel.UnitQuery{Selector: selector, After: after, Limit: readmodel.MaxLimit})
		if err != nil {
			return nil, s.modelError(readmodel.FleetName, err)
		}
		for _, u := range units {
			out = append(out, u.Name)
		}
		if len(out) > MaxCommandTargets {
			return nil, invalidf("selector %q matches more than %d units; narrow it", selector, MaxCommandTargets)
		}
		if len(units) < readmodel.MaxLimit {
			break
		}
		after = units[len(units)-1].Name
	}
	if len(out) == 0 {
		return nil, notFoundf("selector %q matches no active unit (see ListUnits)", selector)
	}
	return out, nil
}

// checkUnitNames validates, sorts and de-duplicates unit names.
func checkUnitNames(names []string) ([]string, error) {
	if len(names) > MaxCommandTargets {
		return nil, invalidf("units: %d, at most %d", len(names), MaxCommandTargets)
	}
	for _, n := range names {
		if _, err := unitStream(n); err != nil {
			return nil, err
		}
	}
	out := slices.Clone(names)
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (c commandService) GetCommand(ctx context.Context, req *connect.Request[logbookv1.GetCommandRequest]) (*connect.Response[logbookv1.GetCommandResponse], error) {
	m := req.Msg
	if _, err := unitStream(m.GetUnit()); err != nil {
		return nil, err
	}
	if m.GetCommandId() == "" {
		return nil, invalidf("command_id: required")
	}
	if err := unit.ValidateCommandID(m.GetCommandId()); err != nil {
		return nil, err
	}
	rec, _, err := c.s.command(ctx, m.GetUnit(), m.GetCommandId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.GetCommandResponse{Command: rec}), nil
}

func (c commandService) ListCommands(ctx context.Context, req *connect.Request[logbookv1.ListCommandsRequest]) (*connect.Response[logbookv1.ListCommandsResponse], error) {
	m := req.Msg
	if m.GetUnit() != "" {
		if _, err := unitStream(m.GetUnit()); err != nil {
			return nil, err
		}
	}
	switch m.GetStatus() {
	case "", readmodel.CommandIssued, readmodel.CommandDelivered, readmodel.CommandSucceeded,
		readmodel.CommandFailed, readmodel.CommandExpired, readmodel.CommandCancelled:
	default:
		return nil, invalidf("status %q: want issued, delivered, succeeded, failed, expired or cancelled", m.GetStatus())
	}
	limit, err := pageLimit(m.GetLimit())
	if err != nil {
		return nil, err
	}
	cmds, err := readmodel.ListCommands(ctx, c.s.d.Models, readmodel.CommandQuery{
		Unit: m.GetUnit(), Status: m.GetStatus(), Before: m.GetAfter(), Limit: limit,
	})
	if err != nil {
		return nil, c.s.modelError(readmodel.CommandsName, err)
	}
	out := &logbookv1.ListCommandsResponse{Commands: make([]*logbookv1.CommandRecord, len(cmds))}
	for i, x := range cmds {
		out.Commands[i] = &logbookv1.CommandRecord{
			Unit:            x.Unit,
			CommandId:       x.ID,
			Method:          x.Method,
			Domain:          x.Domain,
			Args:            x.Args,
			Status:          x.Status,
			ExitCode:        x.ExitCode,
			Error:           x.Error,
			Output:          x.Output,
			OutputSize:      x.OutputSize,
			OutputTruncated: x.OutputTruncated,
			IssuedBy:        x.IssuedBy,
			IssuedAt:        timestamp(x.IssuedAt),
			Deadline:        timestamp(x.Deadline),
			DeliveredAt:     timestamp(x.DeliveredAt),
			FinishedAt:      timestamp(x.FinishedAt),
			Position:        x.Position,
		}
	}
	if len(cmds) == limit {
		out.Next = cmds[len(cmds)-1].IssuedPosition
	}
	return connect.NewResponse(out), nil
}

// WaitCommand streams each unit's final result as it happens. It reads
// the log's head, then checks each unit's state (a command already
// finished is sent at once), then follows the log from just after that
// head for the command's final events, so none is missed or sent twice.
func (c commandService) WaitCommand(ctx context.Context, req *connect.Request[logbookv1.WaitCommandRequest], stream *connect.ServerStream[logbookv1.WaitCommandResponse]) error {
	m := req.Msg
	id := m.GetCommandId()
	if id == "" {
		return invalidf("command_id: required (as returned by RunCommand)")
	}
	if err := unit.ValidateCommandID(id); err != nil {
		return err
	}
	if len(m.GetUnits()) == 0 {
		return invalidf("units: required (as returned by RunCommand)")
	}
	names, err := checkUnitNames(m.GetUnits())
	if err != nil {
		return err
	}
	head, err := c.s.d.Store.Head(ctx)
	if err != nil {
		return err
	}
	total, done := uint32(len(names)), uint32(0)
	send := func(rec *logbookv1.CommandRecord) error {
		done++
		return stream.Send(&logbookv1.WaitCommandResponse{Command: rec, Done: done, Total: total})
	}
	waiting := map[string]bool{}
	for _, name := range names {
		rec, final, err := c.s.command(ctx, name, id)
		if err != nil {
			return err
		}
		if !final {
			waiting[name] = true
			continue
		}
		if err := send(rec); err != nil {
			return err
		}
	}
	if len(waiting) == 0 {
		return nil
	}
	filter := events.Filter{Categories: []string{unit.Category}, Types: finalTypes}
	for ev, err := range c.s.d.Store.Subscribe(ctx, head.Position+1, filter) {
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(ev.Stream, unit.Category+"-")
		if !waiting[name] {
			continue
		}
		msg, err := unitRegistry.Decode(ev)
		if err != nil {
			return err
		}
		if commandIDOf(msg) != id {
			continue
		}
		rec, final, err := c.s.command(ctx, name, id)
		if err != nil {
			return err
		}
		if !final {
			// The entity has not seen the event yet (it was written
			// through another node): the event itself is the outcome.
			applyOutcome(rec, msg, ev)
		}
		delete(waiting, name)
		if err := send(rec); err != nil {
			return err
		}
		if len(waiting) == 0 {
			return nil
		}
	}
	return ctx.Err()
}

// finalTypes are the event types that end a remote command.
var finalTypes = []string{
	string(proto.MessageName(&logbookv1.UnitCommandSucceeded{})),
	string(proto.MessageName(&logbookv1.UnitCommandFailed{})),
	string(proto.MessageName(&logbookv1.UnitCommandExpired{})),
	string(proto.MessageName(&logbookv1.UnitCommandCancelled{})),
}

// unitRegistry decodes the unit aggregate's events.
var unitRegistry = func() *events.Registry {
	r := new(events.Registry)
	r.Register(unit.Kind.Events...)
	return r
}()

// commandIDOf returns the command id of a command lifecycle event.
func commandIDOf(msg proto.Message) string {
	if m, ok := msg.(interface{ GetCommandId() string }); ok {
		return m.GetCommandId()
	}
	return ""
}

// command returns the record of command id of unit name, rebuilt from the
// unit's entity and, once the command is finished (the state keeps no
// inputs of finished commands), from its events in the unit's stream;
// final reports whether the command is finished.
func (s *Server) command(ctx context.Context, name, id string) (rec *logbookv1.CommandRecord, final bool, err error) {
	st, version, err := s.readUnit(ctx, name)
	if err != nil {
		return nil, false, err
	}
	if c, pending := unit.FindCommand(st, id); pending {
		return commandRecord(name, c), false, nil
	}
	// Finished, or older than the finished commands the state retains:
	// find its events in the stream, newest first.
	found, err := s.findCommandEvents(ctx, name, version, id)
	if err != nil {
		return nil, false, err
	}
	if found.issued == nil {
		return nil, false, notFoundf("unit %s has no command %s (see ListCommands)", name, id)
	}
	rec = issuedRecord(name, found.issued)
	rec.DeliveredAt = found.deliveredAt
	if found.final == nil {
		// Pending, though the state said otherwise: another node wrote
		// the stream since this node's entity was last active.
		return rec, false, nil
	}
	applyOutcome(rec, found.final, found.finalEvent)
	return rec, true, nil
}

// commandEvents are the events of one command found in a unit's stream.
type commandEvents struct {
	issued      *logbookv1.UnitCommandIssued
	deliveredAt *timestamppb.Timestamp
	final       proto.Message
	finalEvent  events.Event
}

// findCommandEvents looks for the events of command id in unit name's
// stream up to version, reading ever larger windows back from the end
// until it has the issue event: recent commands cost a short read.
func (s *Server) findCommandEvents(ctx context.Context, name string, version uint64, id string) (commandEvents, error) {
	var found commandEvents
	stream := unit.Category + "-" + name
	for window := uint64(64); ; window *= 16 {
		from := uint64(1)
		if version > window {
			from = version - window + 1
		}
		found = commandEvents{}
		for ev, err := range s.d.Store.ReadStream(ctx, stream, from) {
			if err != nil {
				return found, err
			}
			if ev.Version > version {
				break
			}
			msg, err := unitRegistry.Decode(ev)
			if err != nil {
				return found, err
			}
			if commandIDOf(msg) != id {
				continue
			}
			switch m := msg.(type) {
			case *logbookv1.UnitCommandIssued:
				found.issued = m
			case *logbookv1.UnitCommandDelivered:
				found.deliveredAt = m.GetAt()
			case *logbookv1.UnitCommandSucceeded, *logbookv1.UnitCommandFailed,
				*logbookv1.UnitCommandExpired, *logbookv1.UnitCommandCancelled:
				found.final, found.finalEvent = m, ev
			}
		}
		if from == 1 || found.issued != nil {
			return found, nil
		}
	}
}

// commandRecord is a command as a unit's state holds it.
func commandRecord(name string, c *logbookv1.UnitCommand) *logbookv1.CommandRecord {
	return &logbookv1.CommandRecord{
		Unit:        name,
		CommandId:   c.GetCommandId(),
		Method:      c.GetMethod(),
		Domain:      c.GetDomain(),
		Args:        c.GetArgs(),
		Status:      strings.ToLower(strings.TrimPrefix(c.GetStatus().String(), "UNIT_COMMAND_STATUS_")),
		ExitCode:    c.GetExitCode(),
		IssuedBy:    c.GetIssuedBy(),
		IssuedAt:    c.GetIssuedAt(),
		Deadline:    c.GetDeadline(),
		DeliveredAt: c.GetDeliveredAt(),
		FinishedAt:  c.GetFinishedAt(),
	}
}

// issuedRecord is a command as its issue event describes it.
func issuedRecord(name string, c *logbookv1.UnitCommandIssued) *logbookv1.CommandRecord {
	return &logbookv1.CommandRecord{
		Unit:      name,
		CommandId: c.GetCommandId(),
		Method:    c.GetMethod(),
		Domain:    c.GetDomain(),
		Args:      c.GetArgs(),
		Status:    readmodel.CommandIssued,
		IssuedBy:  c.GetIssuedBy(),
		IssuedAt:  c.GetIssuedAt(),
		Deadline:  c.GetDeadline(),
	}
}

// applyOutcome fills rec from the command's final event.
func applyOutcome(rec *logbookv1.CommandRecord, msg proto.Message, ev events.Event) {
	setOutput := func(out []byte, truncated bool) {
		rec.Output = strings.ToValidUTF8(string(out), "\uFFFD")
		rec.OutputSize = int64(len(out))
		rec.OutputTruncated = truncated
	}
	switch m := msg.(type) {
	case *logbookv1.UnitCommandSucceeded:
		rec.Status, rec.ExitCode, rec.FinishedAt = readmodel.CommandSucceeded, m.GetExitCode(), m.GetAt()
		setOutput(m.GetOutput(), m.GetOutputTruncated())
	case *logbookv1.UnitCommandFailed:
		rec.Status, rec.ExitCode, rec.FinishedAt, rec.Error = readmodel.CommandFailed, m.GetExitCode(), m.GetAt(), m.GetError()
		setOutput(m.GetOutput(), m.GetOutputTruncated())
	case *logbookv1.UnitCommandExpired:
		rec.Status, rec.FinishedAt = readmodel.CommandExpired, m.GetAt()
		rec.Error = "deadline passed before the unit reported a result"
	case *logbookv1.UnitCommandCancelled:
		rec.Status, rec.FinishedAt, rec.Error = readmodel.CommandCancelled, m.GetAt(), m.GetReason()
	}
	rec.Position = ev.Position
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
