package unit

import (
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Evolve applies one event to s in place and returns s. It trusts the event
// (Decide checked it) and copies what it keeps, so s never shares memory
// with the event. Events of other types leave s unchanged.
func Evolve(s *logbookv1.UnitState, event proto.Message) *logbookv1.UnitState {
	switch e := event.(type) {
	case *logbookv1.UnitRegistered:
		s.Name = e.GetName()
		s.Status = logbookv1.UnitStatus_UNIT_STATUS_ACTIVE
		s.RegisteredAt = proto.CloneOf(e.GetAt())
		s.RegisteredBy = e.GetBy()
		s.Platform = e.GetPlatform()
		s.Labels = nil
		for k, v := range e.GetLabels() {
			setLabel(s, k, v)
		}
	case *logbookv1.UnitLabelsSet:
		for k, v := range e.GetLabels() {
			setLabel(s, k, v)
		}
	case *logbookv1.UnitLabelsRemoved:
		for _, k := range e.GetKeys() {
			delete(s.Labels, k)
		}
	case *logbookv1.UnitChannelAssigned:
		s.Channel = e.GetChannel()
		s.ChannelRelease = e.GetChannelRelease()
	case *logbookv1.UnitChannelReleaseObserved:
		s.ChannelRelease = e.GetRelease()
	case *logbookv1.UnitReleasePinned:
		s.PinnedRelease = e.GetRelease()
	case *logbookv1.UnitReleaseUnpinned:
		s.PinnedRelease = ""
	case *logbookv1.UnitDesiredReleaseChanged:
		s.DesiredRelease = e.GetRelease()
	case *logbookv1.UnitConnected:
		s.Connected = true
		s.SessionId = e.GetSessionId()
		s.AgentVersion = e.GetAgentVersion()
		seen(s, e.GetAt())
	case *logbookv1.UnitDisconnected:
		s.Connected = false
		seen(s, e.GetAt())
	case *logbookv1.UnitHeartbeatReceived:
		seen(s, e.GetAt())
	case *logbookv1.UnitReleaseReported:
		s.ReportedRelease = e.GetRelease()
		seen(s, e.GetAt())
	case *logbookv1.UnitProcessesReported:
		s.Processes = make(map[string]*logbookv1.UnitProcessReport, len(e.GetProcesses()))
		for _, p := range e.GetProcesses() {
			s.Processes[ProcessKey(p.GetMethod(), p.GetDomain())] = proto.CloneOf(p)
		}
		seen(s, e.GetAt())
	case *logbookv1.UnitDecommissioned:
		s.Status = logbookv1.UnitStatus_UNIT_STATUS_DECOMMISSIONED
		s.DecommissionedAt = proto.CloneOf(e.GetAt())
		s.Connected = false
	case *logbookv1.UnitCommandIssued:
		s.Pending = append(s.Pending, &logbookv1.UnitCommand{
			CommandId: e.GetCommandId(),
			Method:    e.GetMethod(),
			Domain:    e.GetDomain(),
			Args:      slices.Clone(e.GetArgs()),
			Payload:   slices.Clone(e.GetPayload()),
			Deadline:  proto.CloneOf(e.GetDeadline()),
			IssuedBy:  e.GetIssuedBy(),
			IssuedAt:  proto.CloneOf(e.GetIssuedAt()),
			Signature: slices.Clone(e.GetSignature()),
			Status:    logbookv1.UnitCommandStatus_UNIT_COMMAND_STATUS_ISSUED,
		})
	case *logbookv1.UnitCommandDelivered:
		if i := pendingIndex(s, e.GetCommandId()); i >= 0 {
			s.Pending[i].Status = logbookv1.UnitCommandStatus_UNIT_COMMAND_STATUS_DELIVERED
			s.Pending[i].DeliveredAt = proto.CloneOf(e.GetAt())
		}
		seen(s, e.GetAt())
	case *logbookv1.UnitCommandSucceeded:
		finish(s, e.GetCommandId(), logbookv1.UnitCommandStatus_UNIT_COMMAND_STATUS_SUCCEEDED, e.GetExitCode(), e.GetAt())
		seen(s, e.GetAt())
	case *logbookv1.UnitCommandFailed:
		finish(s, e.GetCommandId(), logbookv1.UnitCommandStatus_UNIT_COMMAND_STATUS_FAILED, e.GetExitCode(), e.GetAt())
		seen(s, e.GetAt())
	case *logbookv1.UnitCommandExpired:
		finish(s, e.GetCommandId(), logbookv1.UnitCommandStatus_UNIT_COMMAND_STATUS_EXPIRED, 0, e.GetAt())
	case *logbookv1.UnitCommandCancelled:
		finish(s, e.GetCommandId(), logbookv1.UnitCommandStatus_UNIT_COMMAND_STATUS_CANCELLED, 0, e.GetAt())
	}
	return s
}

func setLabel(s *logbookv1.UnitState, k, v string) {
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.Labels[k] = v
}

// seen moves last_seen forward to at; it never moves back.
func seen(s *logbookv1.UnitState, at *timestamppb.Timestamp) {
	if at == nil {
		return
	}
	if s.LastSeen == nil || at.AsTime().After(s.LastSeen.AsTime()) {
		s.LastSeen = proto.CloneOf(at)
	}
}

func pendingIndex(s *logbookv1.UnitState, id string) int {
	return slices.IndexFunc(s.Pending, func(c *logbookv1.UnitCommand) bool { return c.GetCommandId() == id })
}

// finish moves pending command id to finished, without its inputs, keeping
// at most MaxFinishedCommands finished commands.
func finish(s *logbookv1.UnitState, id string, st logbookv1.UnitCommandStatus, exit int32, at *timestamppb.Timestamp) {
	i := pendingIndex(s, id)
	if i < 0 {
		return
	}
	c := s.Pending[i]
	s.Pending = slices.Delete(s.Pending, i, i+1)
	c.Args, c.Payload, c.Signature = nil, nil, nil
	c.Status = st
	c.ExitCode = exit
	c.FinishedAt = proto.CloneOf(at)
	s.Finished = append(s.Finished, c)
	if n := len(s.Finished) - MaxFinishedCommands; n > 0 {
		s.Finished = slices.Delete(s.Finished, 0, n)
	}
}
