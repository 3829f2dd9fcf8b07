package channel

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/release"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Category is the stream category of channels: "channel-<name>".
const Category = "channel"

// Bounds of the state. They bound snapshots, not the audit trail: the full
// history is the channel's stream. Changing them changes replayed state.
const (
	// MaxRollbackDepth is how many earlier releases a channel remembers for
	// RollbackChannel; older ones are forgotten (promote them explicitly).
	MaxRollbackDepth = 32
	// MaxHistory is how many of the most recent promotions and rollbacks
	// ChannelState.history keeps.
	MaxHistory = 64
)

// Kind is the Channel aggregate for the entity host.
var Kind = actors.Define(Category, New, Decide, Evolve,
	&logbookv1.ChannelCreated{},
	&logbookv1.ChannelReleasePromoted{},
	&logbookv1.ChannelRolledBack{},
	&logbookv1.ChannelFeatureFlagSet{},
	&logbookv1.ChannelFeatureFlagUnset{},
)

// Stream returns the stream name of channel name.
func Stream(name string) string { return Category + "-" + name }

// New returns the state of channel name before any event: not created.
func New(name string) *logbookv1.ChannelState {
	return &logbookv1.ChannelState{Name: name}
}

// CurrentVersion returns the channel's current release version, or "".
func CurrentVersion(s *logbookv1.ChannelState) string { return s.GetCurrent().GetVersion() }

// RollbackTarget returns the version RollbackChannel would make current, so
// that the API layer knows which release to read the facts of. ok is false
// when there is nothing to roll back to.
func RollbackTarget(s *logbookv1.ChannelState) (version string, ok bool) {
	prev := s.GetPrevious()
	if len(prev) == 0 {
		return "", false
	}
	return prev[len(prev)-1].GetVersion(), true
}

// Decide handles *CreateChannel, *PromoteRelease, *RollbackChannel,
// *SetChannelFeatureFlag and *UnsetChannelFeatureFlag. It does not modify s
// and does no I/O; time and principal come from env. Facts about releases
// come in the commands (see ChannelReleaseFacts). Errors wrap the package's
// sentinels and name the channel.
//
// Two commands are idempotent and then return no events and no error:
// promoting the current release again and setting a flag to the value it has.
func Decide(s *logbookv1.ChannelState, cmd proto.Message, env actors.Env) ([]proto.Message, error) {
	var (
		evs []proto.Message
		err error
	)
	switch c := cmd.(type) {
	case *logbookv1.CreateChannel:
		evs, err = decideCreate(s, c, env)
	case *logbookv1.PromoteRelease:
		evs, err = decidePromote(s, c, env)
	case *logbookv1.RollbackChannel:
		evs, err = decideRollback(s, c, env)
	case *logbookv1.SetChannelFeatureFlag:
		evs, err = decideSetFlag(s, c, env)
	case *logbookv1.UnsetChannelFeatureFlag:
		evs, err = decideUnsetFlag(s, c, env)
	default:
		err = fmt.Errorf("%w %T", ErrUnknownCommand, cmd)
	}
	if err != nil {
		return nil, fmt.Errorf("channel %s: %w", s.GetName(), err)
	}
	return evs, nil
}

// target checks that a command addressed to name reaches entity s and, when
// mustExist, that the channel was created.
func target(s *logbookv1.ChannelState, name string, mustExist bool) error {
	if err := ValidateName(s.GetName()); err != nil {
		return err
	}
	if name != "" && name != s.GetName() {
		return fmt.Errorf("%w: command names %q", ErrNameMismatch, name)
	}
	if mustExist && !s.GetCreated() {
		return ErrNotCreated
	}
	return nil
}

func checkText(field, s string, required bool) error {
	if required && strings.TrimSpace(s) == "" {
		return fmt.Errorf("%w: %s is required", ErrInvalidCommand, field)
	}
	if len(s) > MaxTextLen {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidCommand, field, MaxTextLen)
	}
	return nil
}

// checkFacts checks what the caller established about release version.
func checkFacts(f *logbookv1.ChannelReleaseFacts, version string) error {
	switch {
	case f == nil:
		return fmt.Errorf("%w: read release %s and fill the facts", ErrMissingFacts, version)
	case f.GetVersion() != version:
		return fmt.Errorf("%w: facts are about %q, the command needs release %s", ErrFactsMismatch, f.GetVersion(), version)
	case !f.GetPublished():
		return fmt.Errorf("%w %s: not published", ErrUnknownRelease, version)
	case f.GetYanked():
		return fmt.Errorf("%w: %s", ErrYankedRelease, version)
	}
	return nil
}

func decideCreate(s *logbookv1.ChannelState, c *logbookv1.CreateChannel, env actors.Env) ([]proto.Message, error) {
	if err := target(s, c.GetName(), false); err != nil {
		return nil, err
	}
	if s.GetCreated() {
		return nil, fmt.Errorf("%w by %q", ErrAlreadyCreated, s.GetCreatedBy())
	}
	if err := checkText("description", c.GetDescription(), false); err != nil {
		return nil, err
	}
	return []proto.Message{&logbookv1.ChannelCreated{
		Name:        s.GetName(),
		Description: c.GetDescription(),
		CreatedAt:   timestamppb.New(env.Now),
		CreatedBy:   env.Principal,
	}}, nil
}

func decidePromote(s *logbookv1.ChannelState, c *logbookv1.PromoteRelease, env actors.Env) ([]proto.Message, error) {
	if err := target(s, c.GetChannel(), true); err != nil {
		return nil, err
	}
	v := c.GetVersion()
	if err := release.ValidateVersion(v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCommand, err)
	}
	if err := checkText("reason", c.GetReason(), true); err != nil {
		return nil, err
	}
	if err := checkFacts(c.GetRelease(), v); err != nil {
		return nil, fmt.Errorf("cannot promote: %w", err)
	}
	if v == CurrentVersion(s) {
		return nil, nil // already current: idempotent
	}
	return []proto.Message{&logbookv1.ChannelReleasePromoted{
		Channel:         s.GetName(),
		Version:         v,
		PreviousVersion: CurrentVersion(s),
		Reason:          c.GetReason(),
		PromotedAt:      timestamppb.New(env.Now),
		PromotedBy:      env.Principal,
	}}, nil
}

func decideRollback(s *logbookv1.ChannelState, c *logbookv1.RollbackChannel, env actors.Env) ([]proto.Message, error) {
	if err := target(s, c.GetChannel(), true); err != nil {
		return nil, err
	}
	if err := checkText("reason", c.GetReason(), true); err != nil {
		return nil, err
	}
	to, ok := RollbackTarget(s)
	if !ok {
		return nil, fmt.Errorf("%w: current release is %q and no earlier one is remembered", ErrNothingToRollBack, CurrentVersion(s))
	}
	if err := checkFacts(c.GetTarget(), to); err != nil {
		return nil, fmt.Errorf("cannot roll back from %s to %s: %w", CurrentVersion(s), to, err)
	}
	return []proto.Message{&logbookv1.ChannelRolledBack{
		Channel:      s.GetName(),
		FromVersion:  CurrentVersion(s),
		ToVersion:    to,
		Reason:       c.GetReason(),
		RolledBackAt: timestamppb.New(env.Now),
		RolledBackBy: env.Principal,
	}}, nil
}

func decideSetFlag(s *logbookv1.ChannelState, c *logbookv1.SetChannelFeatureFlag, env actors.Env) ([]proto.Message, error) {
	if err := target(s, c.GetChannel(), true); err != nil {
		return nil, err
	}
	if err := ValidateFlagKey(c.GetKey()); err != nil {
		return nil, err
	}
	if err := ValidateFlagValue(c.GetValue()); err != nil {
		return nil, fmt.Errorf("flag %s: %w", c.GetKey(), err)
	}
	old, exists := s.GetFeatureFlags()[c.GetKey()]
	if exists && old == c.GetValue() {
		return nil, nil // unchanged: idempotent
	}
	if !exists && len(s.GetFeatureFlags()) >= MaxFlags {
		return nil, fmt.Errorf("%w %s: the channel has %d flags, at most %d allowed", ErrInvalidFlag, c.GetKey(), len(s.GetFeatureFlags()), MaxFlags)
	}
	return []proto.Message{&logbookv1.ChannelFeatureFlagSet{
		Channel: s.GetName(),
		Key:     c.GetKey(),
		Value:   c.GetValue(),
		SetAt:   timestamppb.New(env.Now),
		SetBy:   env.Principal,
	}}, nil
}

func decideUnsetFlag(s *logbookv1.ChannelState, c *logbookv1.UnsetChannelFeatureFlag, env actors.Env) ([]proto.Message, error) {
	if err := target(s, c.GetChannel(), true); err != nil {
		return nil, err
	}
	if err := ValidateFlagKey(c.GetKey()); err != nil {
		return nil, err
	}
	if _, exists := s.GetFeatureFlags()[c.GetKey()]; !exists {
		return nil, fmt.Errorf("%w: %s", ErrFlagNotSet, c.GetKey())
	}
	return []proto.Message{&logbookv1.ChannelFeatureFlagUnset{
		Channel: s.GetName(),
		Key:     c.GetKey(),
		UnsetAt: timestamppb.New(env.Now),
		UnsetBy: env.Principal,
	}}, nil
}

// Evolve applies one event to s in place and returns it. State never aliases
// the event. Events of other types leave s unchanged.
func Evolve(s *logbookv1.ChannelState, event proto.Message) *logbookv1.ChannelState {
	switch e := event.(type) {
	case *logbookv1.ChannelCreated:
		if s.Name == "" {
			s.Name = e.GetName()
		}
		s.Created = true
		s.Description = e.GetDescription()
		s.CreatedAt = proto.CloneOf(e.GetCreatedAt())
		s.CreatedBy = e.GetCreatedBy()
	case *logbookv1.ChannelReleasePromoted:
		if s.Current != nil {
			s.Previous = appendBounded(s.Previous, s.Current, MaxRollbackDepth)
		}
		setCurrent(s, &logbookv1.ChannelPromotion{
			Version:     e.GetVersion(),
			FromVersion: e.GetPreviousVersion(),
			Action:      logbookv1.ChannelAction_CHANNEL_ACTION_PROMOTE,
			Reason:      e.GetReason(),
			At:          proto.CloneOf(e.GetPromotedAt()),
			By:          e.GetPromotedBy(),
		})
	case *logbookv1.ChannelRolledBack:
		if n := len(s.Previous); n > 0 {
			s.Previous[n-1] = nil
			s.Previous = s.Previous[:n-1]
		}
		setCurrent(s, &logbookv1.ChannelPromotion{
			Version:     e.GetToVersion(),
			FromVersion: e.GetFromVersion(),
			Action:      logbookv1.ChannelAction_CHANNEL_ACTION_ROLLBACK,
			Reason:      e.GetReason(),
			At:          proto.CloneOf(e.GetRolledBackAt()),
			By:          e.GetRolledBackBy(),
		})
	case *logbookv1.ChannelFeatureFlagSet:
		if s.FeatureFlags == nil {
			s.FeatureFlags = make(map[string]string)
		}
		s.FeatureFlags[e.GetKey()] = e.GetValue()
	case *logbookv1.ChannelFeatureFlagUnset:
		delete(s.FeatureFlags, e.GetKey())
	}
	return s
}

func setCurrent(s *logbookv1.ChannelState, p *logbookv1.ChannelPromotion) {
	s.Current = p
	s.History = appendBounded(s.History, proto.CloneOf(p), MaxHistory)
}

// appendBounded appends p and drops the oldest entries beyond max.
func appendBounded(list []*logbookv1.ChannelPromotion, p *logbookv1.ChannelPromotion, max int) []*logbookv1.ChannelPromotion {
	list = append(list, p)
	if over := len(list) - max; over > 0 {
		list = slices.Delete(list, 0, over)
	}
	return list
}
