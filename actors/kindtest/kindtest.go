// Package kindtest runs given-events / when-command / then-events specifications
// against an aggregate's Kind, the way every aggregate under actors/ is
// tested:
//
//	kindtest.Check(t, unit.Kind, kindtest.Case{
//		ID:    "ship1",
//		Env:   actors.Env{Now: now, Principal: "alice"},
//		Given: []proto.Message{&logbookv1.UnitRegistered{...}},
//		When:  &logbookv1.DecommissionUnit{Reason: "sunk"},
//		Then:  []proto.Message{&logbookv1.UnitDecommissioned{...}},
//	})
//
// Besides the outcome it checks what every Kind promises: Decide leaves the
// state untouched, refuses with no events, emits only types listed in
// Kind.Events, and Evolve keeps no memory shared with the events it applied.
package kindtest

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/actors"
)

// Case is one specification.
type Case struct {
	// ID is the entity id (the stream is "<category>-<ID>").
	ID string
	// Env is what the decision sees.
	Env actors.Env
	// Given are the events already in the stream, folded from Kind.New.
	Given []proto.Message
	// When is the command.
	When proto.Message
	// Then are the events expected when Errs is empty (none: no events).
	Then []proto.Message
	// Errs, when set, are errors the refusal must match with errors.Is.
	Errs []error
}

// Check runs c against kind and reports every difference on t. It returns
// the refusal error, if any, for further checks.
func Check(t testing.TB, kind actors.Kind, c Case) error {
	t.Helper()
	state := kind.New(c.ID)
	for _, e := range c.Given {
		state = kind.Evolve(state, e)
	}
	before := proto.Clone(state)
	got, err := kind.Decide(state, c.When, c.Env)
	if !proto.Equal(before, state) {
		t.Errorf("Decide modified the state:\nbefore: %s\nafter:  %s", Text(before), Text(state))
	}
	if len(c.Errs) > 0 {
		if err == nil {
			t.Fatalf("Decide = %s, want an error matching %v", Texts(got), c.Errs)
		}
		for _, want := range c.Errs {
			if !errors.Is(err, want) {
				t.Errorf("Decide error %q does not match %v", err, want)
			}
		}
		if got != nil {
			t.Errorf("Decide returned events with an error: %s", Texts(got))
		}
		return err
	}
	if err != nil {
		t.Fatalf("Decide: unexpected error %v", err)
	}
	if len(got) != len(c.Then) {
		t.Fatalf("got %d events, want %d:\ngot:  %s\nwant: %s", len(got), len(c.Then), Texts(got), Texts(c.Then))
	}
	for i := range got {
		if !proto.Equal(got[i], c.Then[i]) {
			t.Errorf("event %d:\ngot:  %s\nwant: %s", i, Text(got[i]), Text(c.Then[i]))
		}
	}
	for _, e := range got {
		if !listed(kind, e) {
			t.Errorf("event %s is not in the kind's Events", e.ProtoReflect().Descriptor().FullName())
		}
		state = kind.Evolve(state, e)
	}
	// Evolve copies what it keeps: clobbering the events must not change state.
	after := proto.Clone(state)
	for _, e := range got {
		proto.Reset(e)
	}
	if !proto.Equal(after, state) {
		t.Errorf("state shares memory with the events it was evolved from")
	}
	return nil
}

func listed(kind actors.Kind, e proto.Message) bool {
	name := e.ProtoReflect().Descriptor().FullName()
	for _, k := range kind.Events {
		if k.ProtoReflect().Descriptor().FullName() == name {
			return true
		}
	}
	return false
}

// Text renders a message for test output.
func Text(m proto.Message) string {
	if m == nil {
		return "<nil>"
	}
	return string(m.ProtoReflect().Descriptor().Name()) + "{" + prototext.MarshalOptions{}.Format(m) + "}"
}

// Texts renders messages for test output.
func Texts(ms []proto.Message) string {
	if len(ms) == 0 {
		return "(no events)"
	}
	var b strings.Builder
	for _, m := range ms {
		b.WriteString("\n  " + Text(m))
	}
	return b.String()
}
