package unit

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Bounds that keep a unit's state and events small.
const (
	// MaxPendingCommands is the most remote commands that may be pending
	// (issued or delivered, not finished) at once.
	MaxPendingCommands = 256
	// MaxFinishedCommands is how many finished remote commands the state
	// keeps, newest last; older ones live only in the stream.
	MaxFinishedCommands = 100
	// MaxCommandIDLen is the longest remote command id in bytes.
	MaxCommandIDLen = 128
	// MaxCommandInputBytes bounds a remote command's args and payload together.
	MaxCommandInputBytes = 64 << 10
	// MaxSignatureBytes bounds a remote command's signature.
	MaxSignatureBytes = 512
	// MaxOutputBytes is how much of a command's output is kept; the rest
	// is dropped and the event says output_truncated.
	MaxOutputBytes = 64 << 10
	// MaxTextLen bounds free text: reasons, error messages, session ids,
	// agent versions and platforms (longer agent texts are cut, longer
	// operator texts refused).
	MaxTextLen = 1024
	// MaxProcesses is the most processes one ReportUnitProcesses may list.
	MaxProcesses = 256
	// HeartbeatResolution is how stale last_seen must be before a heartbeat
	// is recorded: heartbeats more frequent than this produce no events.
	HeartbeatResolution = time.Minute
)

// Kind is the Unit aggregate for the entity host.
var Kind = actors.Define(Category, New, Decide, Evolve,
	&logbookv1.UnitRegistered{},
	&logbookv1.UnitLabelsSet{},
	&logbookv1.UnitLabelsRemoved{},
	&logbookv1.UnitChannelAssigned{},
	&logbookv1.UnitChannelReleaseObserved{},
	&logbookv1.UnitReleasePinned{},
	&logbookv1.UnitReleaseUnpinned{},
	&logbookv1.UnitDesiredReleaseChanged{},
	&logbookv1.UnitConnected{},
	&logbookv1.UnitDisconnected{},
	&logbookv1.UnitHeartbeatReceived{},
	&logbookv1.UnitReleaseReported{},
	&logbookv1.UnitProcessesReported{},
	&logbookv1.UnitDecommissioned{},
	&logbookv1.UnitCommandIssued{},
	&logbookv1.UnitCommandDelivered{},
	&logbookv1.UnitCommandSucceeded{},
	&logbookv1.UnitCommandFailed{},
	&logbookv1.UnitCommandExpired{},
	&logbookv1.UnitCommandCancelled{},
)

// New returns the state of unit name before any event: not registered.
func New(name string) *logbookv1.UnitState {
	return &logbookv1.UnitState{Name: name}
}

// Decide returns the events cmd produces for unit s, or an error wrapping
// one of the package's sentinels, prefixed "unit <name>: ". It neither
// modifies s nor keeps references to s or cmd in the events.
//
// RegisterUnit needs an unregistered unit; every other command needs an
// active one (ErrNotRegistered, ErrDecommissioned). A command that would
// change nothing yields no events and no error, except RegisterUnit
// (ErrAlreadyRegistered) and any command to a decommissioned unit
// (ErrDecommissioned).
func Decide(s *logbookv1.UnitState, cmd proto.Message, env actors.Env) ([]proto.Message, error) {
	evs, err := decide(s, cmd, env)
	if err != nil {
		name := s.GetName()
		if ValidateName(name) != nil {
			name = fmt.Sprintf("%q", name)
		}
		return nil, fmt.Errorf("unit %s: %w", name, err)
	}
	return evs, nil
}

func decide(s *logbookv1.UnitState, cmd proto.Message, env actors.Env) ([]proto.Message, error) {
	if c, ok := cmd.(*logbookv1.RegisterUnit); ok {
		return register(s, c, env)
	}
	var h func() ([]proto.Message, error)
	switch c := cmd.(type) {
	case *logbookv1.SetUnitLabels:
		h = func() ([]proto.Message, error) { return setLabels(s, c) }
	case *logbookv1.RemoveUnitLabels:
		h = func() ([]proto.Message, error) { return removeLabels(s, c) }
	case *logbookv1.AssignUnitChannel:
		h = func() ([]proto.Message, error) { return assignChannel(s, c) }
	case *logbookv1.ObserveUnitChannelRelease:
		h = func() ([]proto.Message, error) { return observeChannelRelease(s, c) }
	case *logbookv1.PinUnitRelease:
		h = func() ([]proto.Message, error) { return pin(s, c, env) }
	case *logbookv1.UnpinUnitRelease:
		h = func() ([]proto.Message, error) { return unpin(s, env) }
	case *logbookv1.RecordUnitConnected:
		h = func() ([]proto.Message, error) { return connected(s, c, env) }
	case *logbookv1.RecordUnitDisconnected:
		h = func() ([]proto.Message, error) { return disconnected(s, c, env) }
	case *logbookv1.RecordUnitHeartbeat:
		h = func() ([]proto.Message, error) { return heartbeat(s, env) }
	case *logbookv1.ReportUnitRelease:
		h = func() ([]proto.Message, error) { return reportRelease(s, c, env) }
	case *logbookv1.ReportUnitProcesses:
		h = func() ([]proto.Message, error) { return reportProcesses(s, c, env) }
	case *logbookv1.DecommissionUnit:
		h = func() ([]proto.Message, error) { return decommission(s, c, env) }
	case *logbookv1.IssueUnitCommand:
		h = func() ([]proto.Message, error) { return issue(s, c, env) }
	case *logbookv1.MarkUnitCommandDelivered:
		h = func() ([]proto.Message, error) { return markDelivered(s, c, env) }
	case *logbookv1.RecordUnitCommandResult:
		h = func() ([]proto.Message, error) { return recordResult(s, c, env) }
	case *logbookv1.ExpireUnitCommand:
		h = func() ([]proto.Message, error) { return expire(s, c, env) }
	default:
		return nil, fmt.Errorf("%w: %T", ErrUnsupported, cmd)
	}
	switch s.GetStatus() {
	case logbookv1.UnitStatus_UNIT_STATUS_ACTIVE:
		return h()
	case logbookv1.UnitStatus_UNIT_STATUS_DECOMMISSIONED:
		return nil, fmt.Errorf("%w: %s refused", ErrDecommissioned, cmd.ProtoReflect().Descriptor().Name())
	default:
		return nil, fmt.Errorf("%w: %s refused", ErrNotRegistered, cmd.ProtoReflect().Descriptor().Name())
	}
}

func register(s *logbookv1.UnitState, c *logbookv1.RegisterUnit, env actors.Env) ([]proto.Message, error) {
	if err := ValidateName(s.GetName()); err != nil {
		return nil, err
	}
	switch s.GetStatus() {
	case logbookv1.UnitStatus_UNIT_STATUS_ACTIVE:
		return nil, fmt.Errorf("%w at %s by %s", ErrAlreadyRegistered, fmtTime(s.GetRegisteredAt()), s.GetRegisteredBy())
	case logbookv1.UnitStatus_UNIT_STATUS_DECOMMISSIONED:
		return nil, fmt.Errorf("%w: a decommissioned name is never reused", ErrDecommissioned)
	}
	if why := checkText(c.GetPlatform()); why != "" {
		return nil, fmt.Errorf("%w: platform: %s", ErrInvalidReport, why)
	}
	if len(c.GetLabels()) > MaxLabels {
		return nil, fmt.Errorf("%w: %d labels, at most %d allowed", ErrInvalidLabel, len(c.GetLabels()), MaxLabels)
	}
	for _, k := range slices.Sorted(maps.Keys(c.GetLabels())) {
		if err := ValidateLabel(k, c.GetLabels()[k]); err != nil {
			return nil, err
		}
	}
	return []proto.Message{&logbookv1.UnitRegistered{
		Name:     s.GetName(),
		Platform: c.GetPlatform(),
		Labels:   maps.Clone(c.GetLabels()),
		At:       timestamppb.New(env.Now),
		By:       env.Principal,
	}}, nil
}

func setLabels(s *logbookv1.UnitState, c *logbookv1.SetUnitLabels) ([]proto.Message, error) {
	changed := map[string]string{}
	added := 0
	for _, k := range slices.Sorted(maps.Keys(c.GetLabels())) {
		v := c.GetLabels()[k]
		if err := ValidateLabel(k, v); err != nil {
			return nil, err
		}
		old, ok := s.GetLabels()[k]
		if ok && old == v {
			continue
		}
		if !ok {
			added++
		}
		changed[k] = v
	}
	if n := len(s.GetLabels()) + added; n > MaxLabels {
		return nil, fmt.Errorf("%w: would have %d labels, at most %d allowed", ErrInvalidLabel, n, MaxLabels)
	}
	if len(changed) == 0 {
		return nil, nil
	}
	return []proto.Message{&logbookv1.UnitLabelsSet{Labels: changed}}, nil
}

func removeLabels(s *logbookv1.UnitState, c *logbookv1.RemoveUnitLabels) ([]proto.Message, error) {
	var keys []string
	for _, k := range c.GetKeys() {
		if err := ValidateLabel(k, ""); err != nil {
			return nil, err
		}
		if _, ok := s.GetLabels()[k]; ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	slices.Sort(keys)
	return []proto.Message{&logbookv1.UnitLabelsRemoved{Keys: slices.Compact(keys)}}, nil
}

// validID checks that id can name an entity of category (a channel name, a
// release version): the event store's rules for stream ids.
func validID(category, id string) error {
	if id == "" {
		return fmt.Errorf("empty %s", category)
	}
	if err := events.ValidateStream(category + "-" + id); err != nil {
		return fmt.Errorf("%s %q: %w", category, id, err)
	}
	return nil
}

func assignChannel(s *logbookv1.UnitState, c *logbookv1.AssignUnitChannel) ([]proto.Message, error) {
	ch, f := c.GetChannel(), c.GetFacts()
	if err := validID("channel", ch); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidChannel, err)
	}
	switch {
	case f == nil:
		return nil, fmt.Errorf("%w: no facts about channel %q (the caller must read it first)", ErrInvalidChannel, ch)
	case f.GetName() != ch:
		return nil, fmt.Errorf("%w: facts are about channel %q, not %q", ErrInvalidChannel, f.GetName(), ch)
	case !f.GetExists():
		return nil, fmt.Errorf("%w: channel %q does not exist", ErrInvalidChannel, ch)
	}
	rel := f.GetCurrentRelease()
	if rel != "" {
		if err := validID("release", rel); err != nil {
			return nil, fmt.Errorf("%w: channel %q's current release: %w", ErrInvalidRelease, ch, err)
		}
	}
	if ch == s.GetChannel() {
		if rel == s.GetChannelRelease() {
			return nil, nil
		}
		return withDesired(s, s.GetPinnedRelease(), rel,
			&logbookv1.UnitChannelReleaseObserved{Channel: ch, Release: rel}), nil
	}
	return withDesired(s, s.GetPinnedRelease(), rel,
		&logbookv1.UnitChannelAssigned{Channel: ch, Previous: s.GetChannel(), ChannelRelease: rel}), nil
}

func observeChannelRelease(s *logbookv1.UnitState, c *logbookv1.ObserveUnitChannelRelease) ([]proto.Message, error) {
	ch, rel := c.GetChannel(), c.GetRelease()
	if err := validID("channel", ch); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidChannel, err)
	}
	if ch != s.GetChannel() {
		return nil, fmt.Errorf("%w: unit follows %q, not %q", ErrChannelMismatch, s.GetChannel(), ch)
	}
	if rel != "" {
		if err := validID("release", rel); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidRelease, err)
		}
	}
	if rel == s.GetChannelRelease() {
		return nil, nil
	}
	return withDesired(s, s.GetPinnedRelease(), rel,
		&logbookv1.UnitChannelReleaseObserved{Channel: ch, Release: rel}), nil
}

func pin(s *logbookv1.UnitState, c *logbookv1.PinUnitRelease, env actors.Env) ([]proto.Message, error) {
	rel, f := c.GetRelease(), c.GetFacts()
	if err := validID("release", rel); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRelease, err)
	}
	switch {
	case f == nil:
		return nil, fmt.Errorf("%w: no facts about release %q (the caller must read it first)", ErrInvalidRelease, rel)
	case f.GetVersion() != rel:
		return nil, fmt.Errorf("%w: facts are about release %q, not %q", ErrInvalidRelease, f.GetVersion(), rel)
	case !f.GetPublished():
		return nil, fmt.Errorf("%w: release %q is not published", ErrInvalidRelease, rel)
	case f.GetYanked():
		return nil, fmt.Errorf("%w: release %q is yanked", ErrInvalidRelease, rel)
	}
	if rel == s.GetPinnedRelease() {
		return nil, nil
	}
	return withDesired(s, rel, s.GetChannelRelease(),
		&logbookv1.UnitReleasePinned{Release: rel, By: env.Principal}), nil
}

func unpin(s *logbookv1.UnitState, env actors.Env) ([]proto.Message, error) {
	if s.GetPinnedRelease() == "" {
		return nil, nil
	}
	return withDesired(s, "", s.GetChannelRelease(),
		&logbookv1.UnitReleaseUnpinned{Release: s.GetPinnedRelease(), By: env.Principal}), nil
}

// DesiredRelease is the release a unit with this pin and channel release
// should run: the pin wins.
func DesiredRelease(pinned, channelRelease string) string {
	if pinned != "" {
		return pinned
	}
	return channelRelease
}

// withDesired returns ev followed by UnitDesiredReleaseChanged when the
// desired release after ev (given its pin and channel release) differs.
func withDesired(s *logbookv1.UnitState, pinned, channelRelease string, ev proto.Message) []proto.Message {
	evs := []proto.Message{ev}
	if d := DesiredRelease(pinned, channelRelease); d != s.GetDesiredRelease() {
		evs = append(evs, &logbookv1.UnitDesiredReleaseChanged{Release: d, Previous: s.GetDesiredRelease()})
	}
	return evs
}

func connected(s *logbookv1.UnitState, c *logbookv1.RecordUnitConnected, env actors.Env) ([]proto.Message, error) {
	if c.GetSessionId() == "" {
		return nil, fmt.Errorf("%w: empty session id", ErrInvalidReport)
	}
	if why := checkText(c.GetSessionId()); why != "" {
		return nil, fmt.Errorf("%w: session id: %s", ErrInvalidReport, why)
	}
	if s.GetConnected() && s.GetSessionId() == c.GetSessionId() {
		return nil, nil
	}
	return []proto.Message{&logbookv1.UnitConnected{
		SessionId:    c.GetSessionId(),
		AgentVersion: actors.ClipText(c.GetAgentVersion(), MaxTextLen),
		At:           timestamppb.New(env.Now),
	}}, nil
}

func disconnected(s *logbookv1.UnitState, c *logbookv1.RecordUnitDisconnected, env actors.Env) ([]proto.Message, error) {
	if c.GetSessionId() == "" {
		return nil, fmt.Errorf("%w: empty session id", ErrInvalidReport)
	}
	if !s.GetConnected() || s.GetSessionId() != c.GetSessionId() {
		return nil, nil
	}
	return []proto.Message{&logbookv1.UnitDisconnected{
		SessionId: c.GetSessionId(),
		Reason:    actors.ClipText(c.GetReason(), MaxTextLen),
		At:        timestamppb.New(env.Now),
	}}, nil
}

func heartbeat(s *logbookv1.UnitState, env actors.Env) ([]proto.Message, error) {
	if s.GetLastSeen() != nil && env.Now.Sub(s.GetLastSeen().AsTime()) < HeartbeatResolution {
		return nil, nil
	}
	return []proto.Message{&logbookv1.UnitHeartbeatReceived{At: timestamppb.New(env.Now)}}, nil
}

func reportRelease(s *logbookv1.UnitState, c *logbookv1.ReportUnitRelease, env actors.Env) ([]proto.Message, error) {
	if err := validID("release", c.GetRelease()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidReport, err)
	}
	if c.GetRelease() == s.GetReportedRelease() {
		return nil, nil
	}
	return []proto.Message{&logbookv1.UnitReleaseReported{
		Release:  c.GetRelease(),
		Previous: s.GetReportedRelease(),
		At:       timestamppb.New(env.Now),
	}}, nil
}

// ProcessKey is the key of a process in UnitState.processes: "<method>.<domain>".
func ProcessKey(method, domain string) string { return method + "." + domain }

func reportProcesses(s *logbookv1.UnitState, c *logbookv1.ReportUnitProcesses, env actors.Env) ([]proto.Message, error) {
	if n := len(c.GetProcesses()); n > MaxProcesses {
		return nil, fmt.Errorf("%w: %d processes, at most %d allowed", ErrInvalidReport, n, MaxProcesses)
	}
	procs := make([]*logbookv1.UnitProcessReport, 0, len(c.GetProcesses()))
	seen := map[string]bool{}
	for i, p := range c.GetProcesses() {
		if err := ValidateToken(p.GetMethod()); err != nil {
			return nil, fmt.Errorf("%w: process %d: method %w", ErrInvalidReport, i, err)
		}
		if err := ValidateToken(p.GetDomain()); err != nil {
			return nil, fmt.Errorf("%w: process %d: domain %w", ErrInvalidReport, i, err)
		}
		key := ProcessKey(p.GetMethod(), p.GetDomain())
		if _, ok := logbookv1.ProcessStatus_name[int32(p.GetStatus())]; !ok || p.GetStatus() == logbookv1.ProcessStatus_PROCESS_STATUS_UNSPECIFIED {
			return nil, fmt.Errorf("%w: process %s: status %v", ErrInvalidReport, key, p.GetStatus())
		}
		if seen[key] {
			return nil, fmt.Errorf("%w: process %s listed twice", ErrInvalidReport, key)
		}
		seen[key] = true
		procs = append(procs, proto.CloneOf(p))
	}
	same := len(procs) == len(s.GetProcesses())
	for _, p := range procs {
		if !same {
			break
		}
		same = proto.Equal(p, s.GetProcesses()[ProcessKey(p.GetMethod(), p.GetDomain())])
	}
	if same {
		return nil, nil
	}
	slices.SortFunc(procs, func(a, b *logbookv1.UnitProcessReport) int {
		return strings.Compare(ProcessKey(a.GetMethod(), a.GetDomain()), ProcessKey(b.GetMethod(), b.GetDomain()))
	})
	return []proto.Message{&logbookv1.UnitProcessesReported{Processes: procs, At: timestamppb.New(env.Now)}}, nil
}

func decommission(s *logbookv1.UnitState, c *logbookv1.DecommissionUnit, env actors.Env) ([]proto.Message, error) {
	if strings.TrimSpace(c.GetReason()) == "" {
		return nil, fmt.Errorf("%w to decommission", ErrReasonRequired)
	}
	if why := checkText(c.GetReason()); why != "" {
		return nil, fmt.Errorf("%w: reason: %s", ErrReasonRequired, why)
	}
	now := timestamppb.New(env.Now)
	var evs []proto.Message
	for _, p := range s.GetPending() {
		evs = append(evs, &logbookv1.UnitCommandCancelled{CommandId: p.GetCommandId(), Reason: "unit decommissioned", At: now})
	}
	return append(evs, &logbookv1.UnitDecommissioned{Reason: c.GetReason(), At: now, By: env.Principal}), nil
}

func issue(s *logbookv1.UnitState, c *logbookv1.IssueUnitCommand, env actors.Env) ([]proto.Message, error) {
	if err := ValidateCommandID(c.GetCommandId()); err != nil {
		return nil, err
	}
	if err := ValidateToken(c.GetMethod()); err != nil {
		return nil, fmt.Errorf("%w: method %w", ErrInvalidCommand, err)
	}
	if err := ValidateToken(c.GetDomain()); err != nil {
		return nil, fmt.Errorf("%w: domain %w", ErrInvalidCommand, err)
	}
	size := len(c.GetPayload())
	for i, a := range c.GetArgs() {
		if !utf8.ValidString(a) {
			return nil, fmt.Errorf("%w: arg %d is not valid UTF-8", ErrInvalidCommand, i)
		}
		size += len(a)
	}
	if size > MaxCommandInputBytes {
		return nil, fmt.Errorf("%w: args and payload are %d bytes, at most %d allowed", ErrInvalidCommand, size, MaxCommandInputBytes)
	}
	if n := len(c.GetSignature()); n > MaxSignatureBytes {
		return nil, fmt.Errorf("%w: signature is %d bytes, at most %d allowed", ErrInvalidCommand, n, MaxSignatureBytes)
	}
	if c.GetDeadline() == nil {
		return nil, fmt.Errorf("%w: no deadline", ErrInvalidCommand)
	}
	if err := c.GetDeadline().CheckValid(); err != nil {
		return nil, fmt.Errorf("%w: deadline: %v", ErrInvalidCommand, err)
	}
	if d := c.GetDeadline().AsTime(); !d.After(env.Now) {
		return nil, fmt.Errorf("%w: command %s: deadline %s is not after now (%s)", ErrDeadlinePassed, c.GetCommandId(), fmtTime(c.GetDeadline()), env.Now.UTC().Format(time.RFC3339Nano))
	}
	if p, _ := FindCommand(s, c.GetCommandId()); p != nil {
		return nil, fmt.Errorf("%w: %s (%s)", ErrDuplicateCommand, c.GetCommandId(), statusName(p.GetStatus()))
	}
	if n := len(s.GetPending()); n >= MaxPendingCommands {
		return nil, fmt.Errorf("%w: %d pending, at most %d allowed", ErrTooManyPending, n, MaxPendingCommands)
	}
	return []proto.Message{&logbookv1.UnitCommandIssued{
		CommandId: c.GetCommandId(),
		Method:    c.GetMethod(),
		Domain:    c.GetDomain(),
		Args:      slices.Clone(c.GetArgs()),
		Payload:   bytes.Clone(c.GetPayload()),
		Deadline:  proto.CloneOf(c.GetDeadline()),
		Signature: bytes.Clone(c.GetSignature()),
		IssuedAt:  timestamppb.New(env.Now),
		IssuedBy:  env.Principal,
	}}, nil
}

// ValidateCommandID checks a remote command's id: printable ASCII without
// spaces, 1 to MaxCommandIDLen bytes. Errors wrap ErrInvalidCommand.
func ValidateCommandID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty command id", ErrInvalidCommand)
	case len(id) > MaxCommandIDLen:
		return fmt.Errorf("%w: command id %.16q...: longer than %d bytes", ErrInvalidCommand, id, MaxCommandIDLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] >= 0x7f {
			return fmt.Errorf("%w: command id %q: want printable ASCII without spaces", ErrInvalidCommand, id)
		}
	}
	return nil
}

// FindCommand returns the pending or retained finished command with id,
// and whether it is pending.
func FindCommand(s *logbookv1.UnitState, id string) (*logbookv1.UnitCommand, bool) {
	for _, p := range s.GetPending() {
		if p.GetCommandId() == id {
			return p, true
		}
	}
	for _, f := range s.GetFinished() {
		if f.GetCommandId() == id {
			return f, false
		}
	}
	return nil, false
}

// pendingCommand returns the pending command with id, or an error wrapping
// ErrUnknownCommand or ErrCommandFinished. finished is the finished one.
func pendingCommand(s *logbookv1.UnitState, id string) (pending, finished *logbookv1.UnitCommand, err error) {
	if err := ValidateCommandID(id); err != nil {
		return nil, nil, err
	}
	c, isPending := FindCommand(s, id)
	switch {
	case c == nil:
		return nil, nil, fmt.Errorf("%w: %s", ErrUnknownCommand, id)
	case !isPending:
		return nil, c, fmt.Errorf("%w: %s %s at %s", ErrCommandFinished, id, statusName(c.GetStatus()), fmtTime(c.GetFinishedAt()))
	}
	return c, nil, nil
}

func markDelivered(s *logbookv1.UnitState, c *logbookv1.MarkUnitCommandDelivered, env actors.Env) ([]proto.Message, error) {
	p, finished, err := pendingCommand(s, c.GetCommandId())
	if finished != nil {
		return nil, nil // a late ACK: the result is already in
	}
	if err != nil {
		return nil, err
	}
	if p.GetStatus() == logbookv1.UnitCommandStatus_UNIT_COMMAND_STATUS_DELIVERED {
		return nil, nil
	}
	return []proto.Message{&logbookv1.UnitCommandDelivered{CommandId: p.GetCommandId(), At: timestamppb.New(env.Now)}}, nil
}

func recordResult(s *logbookv1.UnitState, c *logbookv1.RecordUnitCommandResult, env actors.Env) ([]proto.Message, error) {
	p, _, err := pendingCommand(s, c.GetCommandId())
	if err != nil {
		return nil, err
	}
	out, truncated := c.GetOutput(), c.GetOutputTruncated()
	if len(out) > MaxOutputBytes {
		out, truncated = out[:MaxOutputBytes], true
	}
	now := timestamppb.New(env.Now)
	if c.GetExitCode() == 0 && c.GetError() == "" {
		return []proto.Message{&logbookv1.UnitCommandSucceeded{
			CommandId: p.GetCommandId(), Output: bytes.Clone(out), OutputTruncated: truncated, At: now,
		}}, nil
	}
	return []proto.Message{&logbookv1.UnitCommandFailed{
		CommandId: p.GetCommandId(), ExitCode: c.GetExitCode(), Output: bytes.Clone(out), OutputTruncated: truncated,
		Error: actors.ClipText(c.GetError(), MaxTextLen), At: now,
	}}, nil
}

func expire(s *logbookv1.UnitState, c *logbookv1.ExpireUnitCommand, env actors.Env) ([]proto.Message, error) {
	p, _, err := pendingCommand(s, c.GetCommandId())
	if err != nil {
		return nil, err
	}
	if env.Now.Before(p.GetDeadline().AsTime()) {
		return nil, fmt.Errorf("%w: %s is due at %s, now is %s", ErrNotDue, p.GetCommandId(), fmtTime(p.GetDeadline()), env.Now.UTC().Format(time.RFC3339Nano))
	}
	return []proto.Message{&logbookv1.UnitCommandExpired{
		CommandId: p.GetCommandId(), Deadline: proto.CloneOf(p.GetDeadline()), At: timestamppb.New(env.Now),
	}}, nil
}

// Due returns the ids of the pending commands of s whose deadline is at or
// before now, in issue order: the ExpireUnitCommand commands a sweeper
// should send.
func Due(s *logbookv1.UnitState, now time.Time) []string {
	var ids []string
	for _, p := range s.GetPending() {
		if !now.Before(p.GetDeadline().AsTime()) {
			ids = append(ids, p.GetCommandId())
		}
	}
	return ids
}

// checkText says what is wrong with an operator-supplied text, or "".
func checkText(s string) string {
	switch {
	case len(s) > MaxTextLen:
		return fmt.Sprintf("longer than %d bytes", MaxTextLen)
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	}
	for _, r := range s {
		if r != ' ' && !unicode.IsGraphic(r) {
			return fmt.Sprintf("contains control or invisible character %U", r)
		}
	}
	return ""
}

func statusName(st logbookv1.UnitCommandStatus) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "UNIT_COMMAND_STATUS_"))
}

func fmtTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "unknown time"
	}
	return ts.AsTime().Format(time.RFC3339Nano)
}
