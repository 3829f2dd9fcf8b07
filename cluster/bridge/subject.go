package bridge

import (
	"fmt"
	"strings"

	"github.com/logbook-fleet/logbook/actors/unit"
)

// Kinds of edge subjects: the second token of "<unit>.<kind>.<method>.<domain>".
const (
	// KindCommand subjects carry EdgeCommand requests, control plane to agent.
	KindCommand = "command"
	// KindEvent subjects carry EdgeEvent requests, agent to control plane.
	KindEvent = "event"
)

// Subject is a parsed edge subject "<unit>.<kind>.<method>.<domain>", e.g.
// "ship1.event.syslogforwarding.nginx". Every token is subject-safe
// (unit.ValidateToken; the unit also passes unit.ValidateName).
type Subject struct {
	Unit   string
	Kind   string
	Method string
	Domain string
}

// String returns the subject as sent on NATS. It does not validate; use
// CommandSubject, EventSubject or ParseSubject to get a valid one.
func (s Subject) String() string {
	return s.Unit + "." + s.Kind + "." + s.Method + "." + s.Domain
}

// CommandSubject returns "<unit>.command.<method>.<domain>", or an error
// wrapping ErrInvalidSubject when a token is not subject-safe.
func CommandSubject(unitName, method, domain string) (string, error) {
	return build(Subject{Unit: unitName, Kind: KindCommand, Method: method, Domain: domain})
}

// EventSubject returns "<unit>.event.<method>.<domain>", or an error
// wrapping ErrInvalidSubject when a token is not subject-safe.
func EventSubject(unitName, method, domain string) (string, error) {
	return build(Subject{Unit: unitName, Kind: KindEvent, Method: method, Domain: domain})
}

func build(s Subject) (string, error) {
	if err := s.validate(); err != nil {
		return "", err
	}
	return s.String(), nil
}

// ParseSubject splits an edge subject into its four tokens and validates
// them: exactly four non-empty tokens, the second "command" or "event", the
// unit a valid unit name, method and domain valid tokens (no '.', '*', '>',
// whitespace, control characters, path separators or leading '$'). The
// error wraps ErrInvalidSubject. ParseSubject(s).String() == s for every
// accepted s.
func ParseSubject(subject string) (Subject, error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 {
		return Subject{}, fmt.Errorf("%w %.80q: want <unit>.<command|event>.<method>.<domain>, got %d tokens",
			ErrInvalidSubject, subject, len(parts))
	}
	s := Subject{Unit: parts[0], Kind: parts[1], Method: parts[2], Domain: parts[3]}
	if err := s.validate(); err != nil {
		return Subject{}, err
	}
	return s, nil
}

func (s Subject) validate() error {
	if err := unit.ValidateName(s.Unit); err != nil {
		return fmt.Errorf("%w: unit: %w", ErrInvalidSubject, err)
	}
	if s.Kind != KindCommand && s.Kind != KindEvent {
		return fmt.Errorf("%w: kind %.20q: want %q or %q", ErrInvalidSubject, s.Kind, KindCommand, KindEvent)
	}
	if err := unit.ValidateToken(s.Method); err != nil {
		return fmt.Errorf("%w: method %w", ErrInvalidSubject, err)
	}
	if err := unit.ValidateToken(s.Domain); err != nil {
		return fmt.Errorf("%w: domain %w", ErrInvalidSubject, err)
	}
	return nil
}

// Subjects and inbox conventions of the edge link that are not per command.
const (
	// EnrolSubject is where an agent sends its AgentEnrolRequest (a NATS
	// request; the reply is an AgentEnrolResponse).
	EnrolSubject = "logbook.enrol"
	// EnrolUser is the NATS user name an agent connects with to enrol; its
	// password is the one-time enrolment token.
	EnrolUser = "$enrol"
	// EventWildcard matches every unit's events (the intake subscribes it).
	EventWildcard = "*." + KindEvent + ".>"
	// InboxPrefixBase starts every unit's inbox prefix; see InboxPrefix.
	InboxPrefixBase = "_INBOX_"
)

// InboxPrefix returns the reply-inbox prefix unit's agent must use
// (nats.CustomInboxPrefix(InboxPrefix(unit))) both when enrolling and once
// enrolled: "_INBOX_<unit>". A unit may subscribe only below its own
// prefix, so no unit can read another's replies.
func InboxPrefix(unitName string) string { return InboxPrefixBase + unitName }
