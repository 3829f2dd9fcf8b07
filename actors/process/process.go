package process

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Bounds on a process's config and reports.
const (
	// MaxConfigKeys is the most keys a config may have.
	MaxConfigKeys = 256
	// MaxConfigKeyLen is the longest config key in bytes.
	MaxConfigKeyLen = 128
	// MaxConfigBytes bounds a config's keys and values together.
	MaxConfigBytes = 64 << 10
	// MaxDetailBytes is how much of a reported detail is kept.
	MaxDetailBytes = 1024
)

// Kind is the Process aggregate for the entity host.
var Kind = actors.Define(Category, New, Decide, Evolve,
	&logbookv1.ProcessDesiredStatusSet{},
	&logbookv1.ProcessRestartPolicySet{},
	&logbookv1.ProcessConfigured{},
	&logbookv1.ProcessStatusReported{},
)

// New returns the state of process id ("<unit>.<method>.<domain>") before
// any event. For an invalid id the parts stay empty and Decide refuses every
// command with ErrInvalidID.
func New(id string) *logbookv1.ProcessState {
	s := &logbookv1.ProcessState{Id: id}
	if u, m, d, err := ParseID(id); err == nil {
		s.Unit, s.Method, s.Domain = u, m, d
	}
	return s
}

// Decide returns the events cmd produces for process s, or an error wrapping
// one of the package's sentinels, prefixed "process <id>: ". It neither
// modifies s nor keeps references to s or cmd in the events. A command that
// would change nothing yields no events and no error.
//
// A process needs no creation: its first command creates it. Decide does not
// know whether the unit exists; the caller (the API layer for desired-side
// commands, the bridge for reports) must check that the unit is registered
// and not decommissioned.
func Decide(s *logbookv1.ProcessState, cmd proto.Message, env actors.Env) ([]proto.Message, error) {
	evs, err := decide(s, cmd, env)
	if err != nil {
		id := s.GetId()
		if _, _, _, bad := ParseID(id); bad != nil {
			id = fmt.Sprintf("%q", id)
		}
		return nil, fmt.Errorf("process %s: %w", id, err)
	}
	return evs, nil
}

func decide(s *logbookv1.ProcessState, cmd proto.Message, env actors.Env) ([]proto.Message, error) {
	if _, _, _, err := ParseID(s.GetId()); err != nil {
		if isCommand(cmd) {
			return nil, err
		}
	}
	now := timestamppb.New(env.Now)
	switch c := cmd.(type) {
	case *logbookv1.SetProcessDesiredStatus:
		switch c.GetStatus() {
		case logbookv1.ProcessDesiredStatus_PROCESS_DESIRED_STATUS_RUNNING, logbookv1.ProcessDesiredStatus_PROCESS_DESIRED_STATUS_STOPPED:
		default:
			return nil, fmt.Errorf("%w: desired %v, want RUNNING or STOPPED", ErrInvalidStatus, c.GetStatus())
		}
		if c.GetStatus() == s.GetDesiredStatus() {
			return nil, nil
		}
		return []proto.Message{&logbookv1.ProcessDesiredStatusSet{
			Status: c.GetStatus(), Previous: s.GetDesiredStatus(), At: now, By: env.Principal,
		}}, nil

	case *logbookv1.SetProcessRestartPolicy:
		if _, ok := logbookv1.ProcessRestartPolicy_name[int32(c.GetPolicy())]; !ok ||
			c.GetPolicy() == logbookv1.ProcessRestartPolicy_PROCESS_RESTART_POLICY_UNSPECIFIED {
			return nil, fmt.Errorf("%w: %v", ErrInvalidRestartPolicy, c.GetPolicy())
		}
		if c.GetPolicy() == s.GetRestartPolicy() {
			return nil, nil
		}
		return []proto.Message{&logbookv1.ProcessRestartPolicySet{
			Policy: c.GetPolicy(), Previous: s.GetRestartPolicy(), At: now, By: env.Principal,
		}}, nil

	case *logbookv1.ConfigureProcess:
		if err := ValidateConfig(c.GetConfig()); err != nil {
			return nil, err
		}
		if maps.Equal(c.GetConfig(), s.GetConfig()) {
			return nil, nil
		}
		return []proto.Message{&logbookv1.ProcessConfigured{
			Config: maps.Clone(c.GetConfig()), Revision: s.GetConfigRevision() + 1, At: now, By: env.Principal,
		}}, nil

	case *logbookv1.ReportProcessStatus:
		if _, ok := logbookv1.ProcessStatus_name[int32(c.GetStatus())]; !ok ||
			c.GetStatus() == logbookv1.ProcessStatus_PROCESS_STATUS_UNSPECIFIED {
			return nil, fmt.Errorf("%w: reported %v", ErrInvalidStatus, c.GetStatus())
		}
		detail := actors.ClipText(c.GetDetail(), MaxDetailBytes)
		if s.GetReportedAt() != nil && c.GetStatus() == s.GetReportedStatus() && c.GetRestartCount() == s.GetRestartCount() &&
			c.GetExitCode() == s.GetExitCode() && detail == s.GetDetail() {
			return nil, nil
		}
		return []proto.Message{&logbookv1.ProcessStatusReported{
			Status: c.GetStatus(), RestartCount: c.GetRestartCount(), ExitCode: c.GetExitCode(), Detail: detail, At: now,
		}}, nil
	}
	return nil, fmt.Errorf("%w: %T", ErrUnsupported, cmd)
}

func isCommand(cmd proto.Message) bool {
	switch cmd.(type) {
	case *logbookv1.SetProcessDesiredStatus, *logbookv1.SetProcessRestartPolicy,
		*logbookv1.ConfigureProcess, *logbookv1.ReportProcessStatus:
		return true
	}
	return false
}

// ValidateConfig checks a process config: at most MaxConfigKeys keys of 1 to
// MaxConfigKeyLen bytes of printable characters without whitespace, values
// of valid UTF-8 (anything else, newlines included), and at most
// MaxConfigBytes of keys and values together. The error wraps
// ErrInvalidConfig.
func ValidateConfig(config map[string]string) error {
	if len(config) > MaxConfigKeys {
		return fmt.Errorf("%w: %d keys, at most %d allowed", ErrInvalidConfig, len(config), MaxConfigKeys)
	}
	size := 0
	for _, k := range slices.Sorted(maps.Keys(config)) {
		v := config[k]
		size += len(k) + len(v)
		switch {
		case k == "":
			return fmt.Errorf("%w: empty key", ErrInvalidConfig)
		case len(k) > MaxConfigKeyLen:
			return fmt.Errorf("%w: key %.16q...: longer than %d bytes", ErrInvalidConfig, k, MaxConfigKeyLen)
		case !utf8.ValidString(k) || strings.ContainsFunc(k, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsGraphic(r) }):
			return fmt.Errorf("%w: key %q: want printable characters without whitespace", ErrInvalidConfig, k)
		case !utf8.ValidString(v):
			return fmt.Errorf("%w: value of %q is not valid UTF-8", ErrInvalidConfig, k)
		}
	}
	if size > MaxConfigBytes {
		return fmt.Errorf("%w: %d bytes, at most %d allowed", ErrInvalidConfig, size, MaxConfigBytes)
	}
	return nil
}

// Evolve applies one event to s in place and returns s. It copies what it
// keeps, so s never shares memory with the event. Events of other types
// leave s unchanged.
func Evolve(s *logbookv1.ProcessState, event proto.Message) *logbookv1.ProcessState {
	switch e := event.(type) {
	case *logbookv1.ProcessDesiredStatusSet:
		s.DesiredStatus = e.GetStatus()
		s.DesiredChangedAt, s.DesiredChangedBy = proto.CloneOf(e.GetAt()), e.GetBy()
	case *logbookv1.ProcessRestartPolicySet:
		s.RestartPolicy = e.GetPolicy()
		s.DesiredChangedAt, s.DesiredChangedBy = proto.CloneOf(e.GetAt()), e.GetBy()
	case *logbookv1.ProcessConfigured:
		s.Config = maps.Clone(e.GetConfig())
		s.ConfigRevision = e.GetRevision()
		s.DesiredChangedAt, s.DesiredChangedBy = proto.CloneOf(e.GetAt()), e.GetBy()
	case *logbookv1.ProcessStatusReported:
		s.ReportedStatus = e.GetStatus()
		s.RestartCount = e.GetRestartCount()
		s.ExitCode = e.GetExitCode()
		s.Detail = e.GetDetail()
		s.ReportedAt = proto.CloneOf(e.GetAt())
	}
	return s
}
