package actors

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
)

// Env is everything a decision may depend on besides the entity's state and
// the command: passed in so that Decide stays pure and replays are exact.
type Env struct {
	// Now is the time the command is decided at.
	Now time.Time
	// Principal is who asked (an operator, a unit, a control-plane component).
	Principal string
}

// Kind is one kind of entity (unit, process, release, channel): the pure
// core that the host runs for every entity of that kind. Entities of a kind
// live in the streams "<Category>-<id>".
//
// State, commands and events are protobuf messages, so state can be
// snapshotted and events stored as payloads named by their full names.
type Kind struct {
	// Category is the stream category of the kind's entities, e.g. "unit".
	Category string
	// New returns the state of entity id before any event.
	New func(id string) proto.Message
	// Decide returns the events that cmd produces in state, or an error
	// saying why the command is refused (then nothing is appended). It
	// must not modify state and must not do I/O.
	Decide func(state proto.Message, cmd proto.Message, env Env) ([]proto.Message, error)
	// Evolve applies one event to state and returns the new state. The
	// host owns state, so Evolve may modify it in place. Events of types
	// it does not know leave state unchanged.
	Evolve func(state proto.Message, event proto.Message) proto.Message
	// Events lists one value of every event type the kind emits, for the
	// payload type registry.
	Events []proto.Message
}

// Define builds a Kind from typed functions, so that aggregate packages are
// written against their own state type.
func Define[S proto.Message](
	category string,
	newState func(id string) S,
	decide func(state S, cmd proto.Message, env Env) ([]proto.Message, error),
	evolve func(state S, event proto.Message) S,
	eventTypes ...proto.Message,
) Kind {
	return Kind{
		Category: category,
		New:      func(id string) proto.Message { return newState(id) },
		Decide: func(state, cmd proto.Message, env Env) ([]proto.Message, error) {
			s, ok := state.(S)
			if !ok {
				return nil, fmt.Errorf("%s: state is %T", category, state)
			}
			return decide(s, cmd, env)
		},
		Evolve: func(state, event proto.Message) proto.Message {
			return evolve(state.(S), event)
		},
		Events: eventTypes,
	}
}
