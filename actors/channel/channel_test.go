package channel_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors/channel"
	"github.com/logbook-fleet/logbook/actors/release"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

const (
	stable = "stable"
	vA     = "2026.11.1"
	vB     = "2026.11.2"
	vC     = "2026.11.3"
)

var ts = timestamppb.New(now)

// Events, as Decide under env produces them.

func created() *logbookv1.ChannelCreated {
	return &logbookv1.ChannelCreated{Name: stable, Description: "what most units run", CreatedAt: ts, CreatedBy: "alice"}
}

func promoted(version, previous, reason string) *logbookv1.ChannelReleasePromoted {
	return &logbookv1.ChannelReleasePromoted{Channel: stable, Version: version, PreviousVersion: previous,
		Reason: reason, PromotedAt: ts, PromotedBy: "alice"}
}

func rolledBack(from, to, reason string) *logbookv1.ChannelRolledBack {
	return &logbookv1.ChannelRolledBack{Channel: stable, FromVersion: from, ToVersion: to,
		Reason: reason, RolledBackAt: ts, RolledBackBy: "alice"}
}

func flagSet(key, value string) *logbookv1.ChannelFeatureFlagSet {
	return &logbookv1.ChannelFeatureFlagSet{Channel: stable, Key: key, Value: value, SetAt: ts, SetBy: "alice"}
}

func flagUnset(key string) *logbookv1.ChannelFeatureFlagUnset {
	return &logbookv1.ChannelFeatureFlagUnset{Channel: stable, Key: key, UnsetAt: ts, UnsetBy: "alice"}
}

// Facts, as the API layer reads them from release entities.

func publishedRelease(v string) *logbookv1.ChannelReleaseFacts {
	return &logbookv1.ChannelReleaseFacts{Version: v, Published: true}
}

func yankedRelease(v string) *logbookv1.ChannelReleaseFacts {
	return &logbookv1.ChannelReleaseFacts{Version: v, Published: true, Yanked: true}
}

func unknownRelease(v string) *logbookv1.ChannelReleaseFacts {
	return &logbookv1.ChannelReleaseFacts{Version: v}
}

func promote(v string, facts *logbookv1.ChannelReleaseFacts) *logbookv1.PromoteRelease {
	return &logbookv1.PromoteRelease{Channel: stable, Version: v, Reason: "soak passed", Release: facts}
}

func rollback(facts *logbookv1.ChannelReleaseFacts) *logbookv1.RollbackChannel {
	return &logbookv1.RollbackChannel{Channel: stable, Reason: "error rate up", Target: facts}
}

func given(evs ...proto.Message) []proto.Message { return evs }

func TestCreateChannel(t *testing.T) {
	run(t, []spec{
		{name: "creates", when: &logbookv1.CreateChannel{Name: stable, Description: "what most units run"},
			then: given(created())},
		{name: "empty name means this entity", when: &logbookv1.CreateChannel{Description: "what most units run"},
			then: given(created())},
		{name: "refused when it exists", given: given(created()),
			when: &logbookv1.CreateChannel{Name: stable}, errs: []error{channel.ErrAlreadyCreated}},
		{name: "refused for another channel", when: &logbookv1.CreateChannel{Name: "beta"},
			errs: []error{channel.ErrNameMismatch}},
		{name: "refused on an entity with an invalid name", id: "Stable.EU", when: &logbookv1.CreateChannel{},
			errs: []error{channel.ErrInvalidName}},
		{name: "refused with an overlong description",
			when: &logbookv1.CreateChannel{Description: strings.Repeat("x", channel.MaxTextLen+1)},
			errs: []error{channel.ErrInvalidCommand}},
	})
}

func TestPromoteRelease(t *testing.T) {
	run(t, []spec{
		{name: "first promotion", given: given(created()),
			when: promote(vA, publishedRelease(vA)), then: given(promoted(vA, "", "soak passed"))},
		{name: "records the previous release", given: given(created(), promoted(vA, "", "x")),
			when: promote(vB, publishedRelease(vB)), then: given(promoted(vB, vA, "soak passed"))},
		{name: "an earlier release may be promoted again", given: given(created(), promoted(vA, "", "x"), promoted(vB, vA, "y")),
			when: promote(vA, publishedRelease(vA)), then: given(promoted(vA, vB, "soak passed"))},
		{name: "empty channel means this entity", given: given(created()),
			when: &logbookv1.PromoteRelease{Version: vA, Reason: "soak passed", Release: publishedRelease(vA)},
			then: given(promoted(vA, "", "soak passed"))},
		{name: "promoting the current release again is a no-op", given: given(created(), promoted(vA, "", "x")),
			when: promote(vA, publishedRelease(vA)), then: nil},

		{name: "refused for an unknown release", given: given(created()),
			when: promote(vA, unknownRelease(vA)), errs: []error{channel.ErrUnknownRelease}},
		{name: "refused for a yanked release", given: given(created()),
			when: promote(vA, yankedRelease(vA)), errs: []error{channel.ErrYankedRelease}},
		{name: "refused for the current release once yanked", given: given(created(), promoted(vA, "", "x")),
			when: promote(vA, yankedRelease(vA)), errs: []error{channel.ErrYankedRelease}},
		{name: "refused without facts", given: given(created()),
			when: promote(vA, nil), errs: []error{channel.ErrMissingFacts}},
		{name: "refused with facts about another release", given: given(created()),
			when: promote(vA, publishedRelease(vB)), errs: []error{channel.ErrFactsMismatch}},
		{name: "refused with an invalid version", given: given(created()),
			when: promote("2026.11.*", publishedRelease("2026.11.*")),
			errs: []error{channel.ErrInvalidCommand, release.ErrInvalidVersion}},
		{name: "refused without a reason", given: given(created()),
			when: &logbookv1.PromoteRelease{Version: vA, Release: publishedRelease(vA)},
			errs: []error{channel.ErrInvalidCommand}},
		{name: "refused before creation",
			when: promote(vA, publishedRelease(vA)), errs: []error{channel.ErrNotCreated}},
		{name: "refused for another channel", given: given(created()),
			when: &logbookv1.PromoteRelease{Channel: "beta", Version: vA, Reason: "r", Release: publishedRelease(vA)},
			errs: []error{channel.ErrNameMismatch}},
	})
}

func TestRollbackChannel(t *testing.T) {
	ab := given(created(), promoted(vA, "", "x"), promoted(vB, vA, "y"))
	run(t, []spec{
		{name: "rolls back to the previous release", given: ab,
			when: rollback(publishedRelease(vA)), then: given(rolledBack(vB, vA, "error rate up"))},
		{name: "rolls back step by step", given: given(created(), promoted(vA, "", "x"), promoted(vB, vA, "y"),
			promoted(vC, vB, "z"), rolledBack(vC, vB, "r")),
			when: rollback(publishedRelease(vA)), then: given(rolledBack(vB, vA, "error rate up"))},
		{name: "empty channel means this entity", given: ab,
			when: &logbookv1.RollbackChannel{Reason: "error rate up", Target: publishedRelease(vA)},
			then: given(rolledBack(vB, vA, "error rate up"))},

		{name: "refused when nothing was promoted", given: given(created()),
			when: rollback(publishedRelease(vA)), errs: []error{channel.ErrNothingToRollBack}},
		{name: "refused after the first promotion", given: given(created(), promoted(vA, "", "x")),
			when: rollback(publishedRelease(vA)), errs: []error{channel.ErrNothingToRollBack}},
		{name: "refused when everything was rolled back", given: append(ab, rolledBack(vB, vA, "r")),
			when: rollback(publishedRelease(vB)), errs: []error{channel.ErrNothingToRollBack}},
		{name: "refused when the previous release was yanked since", given: ab,
			when: rollback(yankedRelease(vA)), errs: []error{channel.ErrYankedRelease}},
		{name: "refused when the previous release is unknown", given: ab,
			when: rollback(unknownRelease(vA)), errs: []error{channel.ErrUnknownRelease}},
		{name: "refused without facts", given: ab,
			when: rollback(nil), errs: []error{channel.ErrMissingFacts}},
		{name: "refused with facts about another release", given: ab,
			when: rollback(publishedRelease(vC)), errs: []error{channel.ErrFactsMismatch}},
		{name: "refused without a reason", given: ab,
			when: &logbookv1.RollbackChannel{Target: publishedRelease(vA)}, errs: []error{channel.ErrInvalidCommand}},
		{name: "refused before creation",
			when: rollback(publishedRelease(vA)), errs: []error{channel.ErrNotCreated}},
		{name: "refused for another channel", given: ab,
			when: &logbookv1.RollbackChannel{Channel: "beta", Reason: "r", Target: publishedRelease(vA)},
			errs: []error{channel.ErrNameMismatch}},
	})
}

func TestSetChannelFeatureFlag(t *testing.T) {
	set := func(k, v string) *logbookv1.SetChannelFeatureFlag {
		return &logbookv1.SetChannelFeatureFlag{Channel: stable, Key: k, Value: v}
	}
	full := given(created())
	for i := range channel.MaxFlags {
		full = append(full, flagSet(fmt.Sprintf("flag-%d", i), "on"))
	}
	run(t, []spec{
		{name: "sets a flag", given: given(created()),
			when: set("new-dashboard", "true"), then: given(flagSet("new-dashboard", "true"))},
		{name: "changes a flag", given: given(created(), flagSet("rollout.percent", "10")),
			when: set("rollout.percent", "50"), then: given(flagSet("rollout.percent", "50"))},
		{name: "an empty value is a value", given: given(created()),
			when: set("motd", ""), then: given(flagSet("motd", ""))},
		{name: "setting the same value is a no-op", given: given(created(), flagSet("new-dashboard", "true")),
			when: set("new-dashboard", "true"), then: nil},
		{name: "an existing flag may change when the channel is full", given: full,
			when: set("flag-0", "off"), then: given(flagSet("flag-0", "off"))},

		{name: "refused with an invalid key", given: given(created()),
			when: set("New Dashboard", "true"), errs: []error{channel.ErrInvalidFlag}},
		{name: "refused with an invalid UTF-8 value", given: given(created()),
			when: set("motd", "\xff"), errs: []error{channel.ErrInvalidFlag}},
		{name: "refused with an overlong value", given: given(created()),
			when: set("motd", strings.Repeat("x", channel.MaxFlagValueLen+1)), errs: []error{channel.ErrInvalidFlag}},
		{name: "refused when the channel has MaxFlags flags", given: full,
			when: set("one-more", "on"), errs: []error{channel.ErrInvalidFlag}},
		{name: "refused before creation",
			when: set("motd", "hi"), errs: []error{channel.ErrNotCreated}},
		{name: "refused for another channel", given: given(created()),
			when: &logbookv1.SetChannelFeatureFlag{Channel: "beta", Key: "motd"}, errs: []error{channel.ErrNameMismatch}},
	})
}

func TestUnsetChannelFeatureFlag(t *testing.T) {
	unset := func(k string) *logbookv1.UnsetChannelFeatureFlag {
		return &logbookv1.UnsetChannelFeatureFlag{Channel: stable, Key: k}
	}
	run(t, []spec{
		{name: "unsets a flag", given: given(created(), flagSet("motd", "hi")),
			when: unset("motd"), then: given(flagUnset("motd"))},
		{name: "refused when not set", given: given(created(), flagSet("motd", "hi"), flagUnset("motd")),
			when: unset("motd"), errs: []error{channel.ErrFlagNotSet}},
		{name: "refused with an invalid key", given: given(created()),
			when: unset("../motd"), errs: []error{channel.ErrInvalidFlag}},
		{name: "refused before creation",
			when: unset("motd"), errs: []error{channel.ErrNotCreated}},
		{name: "refused for another channel", given: given(created(), flagSet("motd", "hi")),
			when: &logbookv1.UnsetChannelFeatureFlag{Channel: "beta", Key: "motd"}, errs: []error{channel.ErrNameMismatch}},
	})
}

func TestUnknownCommand(t *testing.T) {
	run(t, []spec{
		{name: "an event is not a command", when: created(), errs: []error{channel.ErrUnknownCommand}},
		{name: "a release command", when: &logbookv1.YankRelease{}, errs: []error{channel.ErrUnknownCommand}},
		{name: "nil", when: nil, errs: []error{channel.ErrUnknownCommand}},
	})
}

func fold(evs ...proto.Message) *logbookv1.ChannelState {
	s := channel.New(stable)
	for _, e := range evs {
		s = channel.Evolve(s, e)
	}
	return s
}

func TestFold(t *testing.T) {
	if s := channel.New(stable); !proto.Equal(s, &logbookv1.ChannelState{Name: stable}) {
		t.Fatalf("New = %v", text(s))
	}
	s := fold(created(), promoted(vA, "", "first"), promoted(vB, vA, "second"), promoted(vC, vB, "third"),
		rolledBack(vC, vB, "bad"), flagSet("motd", "hi"), flagSet("new-ui", "on"), flagUnset("motd"),
		&logbookv1.ReleaseYanked{}) // unknown events are ignored
	pA := &logbookv1.ChannelPromotion{Version: vA, Action: logbookv1.ChannelAction_CHANNEL_ACTION_PROMOTE, Reason: "first", At: ts, By: "alice"}
	pB := &logbookv1.ChannelPromotion{Version: vB, FromVersion: vA, Action: logbookv1.ChannelAction_CHANNEL_ACTION_PROMOTE, Reason: "second", At: ts, By: "alice"}
	pC := &logbookv1.ChannelPromotion{Version: vC, FromVersion: vB, Action: logbookv1.ChannelAction_CHANNEL_ACTION_PROMOTE, Reason: "third", At: ts, By: "alice"}
	rb := &logbookv1.ChannelPromotion{Version: vB, FromVersion: vC, Action: logbookv1.ChannelAction_CHANNEL_ACTION_ROLLBACK, Reason: "bad", At: ts, By: "alice"}
	want := &logbookv1.ChannelState{
		Name:         stable,
		Created:      true,
		Description:  "what most units run",
		CreatedAt:    ts,
		CreatedBy:    "alice",
		Current:      rb,
		Previous:     []*logbookv1.ChannelPromotion{pA},
		History:      []*logbookv1.ChannelPromotion{pA, pB, pC, rb},
		FeatureFlags: map[string]string{"new-ui": "on"},
	}
	if !proto.Equal(s, want) {
		t.Fatalf("fold:\ngot:  %v\nwant: %v", text(s), text(want))
	}
	if v := channel.CurrentVersion(s); v != vB {
		t.Errorf("CurrentVersion = %q, want %q", v, vB)
	}
	if v, ok := channel.RollbackTarget(s); !ok || v != vA {
		t.Errorf("RollbackTarget = %q, %v; want %q, true", v, ok, vA)
	}
}

// The state is bounded: the rollback stack keeps MaxRollbackDepth releases,
// the history MaxHistory changes; rolling back walks the whole stack.
func TestBounds(t *testing.T) {
	n := channel.MaxHistory + 10
	evs := given(created())
	for i := range n {
		prev := ""
		if i > 0 {
			prev = fmt.Sprintf("1.0.%d", i-1)
		}
		evs = append(evs, promoted(fmt.Sprintf("1.0.%d", i), prev, "r"))
	}
	s := fold(evs...)
	if len(s.Previous) != channel.MaxRollbackDepth || len(s.History) != channel.MaxHistory {
		t.Fatalf("previous %d, history %d; want %d, %d", len(s.Previous), len(s.History), channel.MaxRollbackDepth, channel.MaxHistory)
	}
	if got, want := s.History[0].Version, fmt.Sprintf("1.0.%d", n-channel.MaxHistory); got != want {
		t.Fatalf("oldest history entry %s, want %s", got, want)
	}
	for i := range channel.MaxRollbackDepth {
		to, ok := channel.RollbackTarget(s)
		if want := fmt.Sprintf("1.0.%d", n-2-i); !ok || to != want {
			t.Fatalf("rollback %d: target %q, want %q", i, to, want)
		}
		evs, err := channel.Decide(s, rollback(publishedRelease(to)), env)
		if err != nil {
			t.Fatalf("rollback %d: %v", i, err)
		}
		s = channel.Evolve(s, evs[0])
	}
	if _, err := channel.Decide(s, rollback(publishedRelease("1.0.0")), env); !errors.Is(err, channel.ErrNothingToRollBack) {
		t.Fatalf("rollback past the stack: %v, want ErrNothingToRollBack", err)
	}
}

func TestEvolveDoesNotAliasEvent(t *testing.T) {
	e := promoted(vA, "", "x")
	e.PromotedAt = timestamppb.New(now)
	s := fold(created(), e)
	want := proto.Clone(s)
	e.PromotedAt.Seconds++
	if !proto.Equal(s, want) {
		t.Fatalf("changing the event changed the state")
	}
}

// Decide is pure: the state it was given is unchanged whatever it decides.
func TestDecideDoesNotModifyState(t *testing.T) {
	states := []*logbookv1.ChannelState{
		channel.New(stable),
		fold(created()),
		fold(created(), promoted(vA, "", "x"), promoted(vB, vA, "y"), flagSet("motd", "hi")),
	}
	cmds := []proto.Message{
		&logbookv1.CreateChannel{},
		promote(vC, publishedRelease(vC)),
		promote(vB, publishedRelease(vB)),
		rollback(publishedRelease(vA)),
		&logbookv1.SetChannelFeatureFlag{Key: "motd", Value: "bye"},
		&logbookv1.SetChannelFeatureFlag{Key: "new", Value: "x"},
		&logbookv1.UnsetChannelFeatureFlag{Key: "motd"},
	}
	for i, s := range states {
		for _, c := range cmds {
			before := proto.Clone(s)
			channel.Decide(s, c, env)
			if !proto.Equal(s, before) {
				t.Errorf("state %d, %T: state changed:\nbefore: %v\nafter:  %v", i, c, text(before), text(s))
			}
		}
	}
}

func TestKind(t *testing.T) {
	if channel.Kind.Category != "channel" || channel.Stream(stable) != "channel-stable" {
		t.Fatalf("category %q, stream %q", channel.Kind.Category, channel.Stream(stable))
	}
	if len(channel.Kind.Events) != 5 {
		t.Fatalf("Kind.Events = %v", channel.Kind.Events)
	}
	if _, err := channel.Kind.Decide(&logbookv1.ReleaseState{}, &logbookv1.CreateChannel{}, env); err == nil {
		t.Fatal("Decide accepted a foreign state type")
	}
}
