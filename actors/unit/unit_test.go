package unit_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/unit"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Fixtures: events that put a unit "ship1" in a known state.
var (
	registered = &logbookv1.UnitRegistered{Name: "ship1", Platform: "linux/arm64", At: ts(-time.Hour), By: principal}
	labelled   = &logbookv1.UnitLabelsSet{Labels: map[string]string{"site": "north", "rack": "r1"}}
	onStable   = []proto.Message{
		&logbookv1.UnitChannelAssigned{Channel: "stable", ChannelRelease: "2026.11.1"},
		&logbookv1.UnitDesiredReleaseChanged{Release: "2026.11.1"},
	}
	pinnedTo2 = []proto.Message{
		&logbookv1.UnitReleasePinned{Release: "2026.11.2", By: principal},
		&logbookv1.UnitDesiredReleaseChanged{Release: "2026.11.2", Previous: "2026.11.1"},
	}
	connectedS1    = &logbookv1.UnitConnected{SessionId: "s1", AgentVersion: "1.0.0", At: ts(-time.Minute)}
	decommissioned = &logbookv1.UnitDecommissioned{Reason: "sunk", At: ts(-time.Minute), By: principal}
)

func evs(groups ...any) []proto.Message {
	var out []proto.Message
	for _, g := range groups {
		switch g := g.(type) {
		case proto.Message:
			out = append(out, g)
		case []proto.Message:
			out = append(out, g...)
		default:
			panic(fmt.Sprintf("evs: %T", g))
		}
	}
	return out
}

func releaseFacts(v string) *logbookv1.UnitReleaseFacts {
	return &logbookv1.UnitReleaseFacts{Version: v, Published: true}
}

func channelFacts(name, rel string) *logbookv1.UnitChannelFacts {
	return &logbookv1.UnitChannelFacts{Name: name, Exists: true, CurrentRelease: rel}
}

// issued is a UnitCommandIssued at t0-1m with deadline t0+deadline.
func issued(id string, deadline time.Duration) *logbookv1.UnitCommandIssued {
	return &logbookv1.UnitCommandIssued{
		CommandId: id, Method: "shellcommand", Domain: "operatingsystem",
		Args: []string{"uptime"}, Deadline: ts(deadline), IssuedAt: ts(-time.Minute), IssuedBy: principal,
	}
}

func TestRegister(t *testing.T) {
	runSpecs(t, []spec{
		{"registers", given().
			when(&logbookv1.RegisterUnit{Platform: "linux/arm64", Labels: map[string]string{"site": "north"}}).
			then(&logbookv1.UnitRegistered{Name: "ship1", Platform: "linux/arm64", Labels: map[string]string{"site": "north"}, At: ts(0), By: principal})},
		{"twice", given(registered).when(&logbookv1.RegisterUnit{}).thenErr(unit.ErrAlreadyRegistered)},
		{"after decommission", given(registered, decommissioned).when(&logbookv1.RegisterUnit{}).thenErr(unit.ErrDecommissioned)},
		{"bad label", given().when(&logbookv1.RegisterUnit{Labels: map[string]string{"-x": "y"}}).thenErr(unit.ErrInvalidLabel)},
		{"too many labels", given().when(&logbookv1.RegisterUnit{Labels: manyLabels(unit.MaxLabels + 1)}).thenErr(unit.ErrInvalidLabel)},
		{"bad platform", given().when(&logbookv1.RegisterUnit{Platform: "linux\n"}).thenErr(unit.ErrInvalidReport)},
	})
	for _, name := range []string{"", "ship.1", "ship 1", "ship*", "a>", "$SYS"} {
		t.Run("invalid name "+name, func(t *testing.T) {
			given().when(&logbookv1.RegisterUnit{}).thenErr(unit.ErrInvalidName).run(t, name)
		})
	}
}

func manyLabels(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

func TestLabels(t *testing.T) {
	runSpecs(t, []spec{
		{"set new and changed, skip unchanged", given(registered, labelled).
			when(&logbookv1.SetUnitLabels{Labels: map[string]string{"site": "north", "rack": "r2", "role": "gw"}}).
			then(&logbookv1.UnitLabelsSet{Labels: map[string]string{"rack": "r2", "role": "gw"}})},
		{"set to current values is a no-op", given(registered, labelled).
			when(&logbookv1.SetUnitLabels{Labels: map[string]string{"site": "north"}}).then()},
		{"set empty value", given(registered).
			when(&logbookv1.SetUnitLabels{Labels: map[string]string{"example.com/flag": ""}}).
			then(&logbookv1.UnitLabelsSet{Labels: map[string]string{"example.com/flag": ""}})},
		{"set invalid key", given(registered).
			when(&logbookv1.SetUnitLabels{Labels: map[string]string{"a b": "v"}}).thenErr(unit.ErrInvalidLabel)},
		{"set invalid value", given(registered).
			when(&logbookv1.SetUnitLabels{Labels: map[string]string{"k": "a\tb"}}).thenErr(unit.ErrInvalidLabel)},
		{"set beyond MaxLabels", given(registered, &logbookv1.UnitLabelsSet{Labels: manyLabels(unit.MaxLabels)}).
			when(&logbookv1.SetUnitLabels{Labels: map[string]string{"one": "more"}}).thenErr(unit.ErrInvalidLabel)},
		{"overwrite at MaxLabels", given(registered, &logbookv1.UnitLabelsSet{Labels: manyLabels(unit.MaxLabels)}).
			when(&logbookv1.SetUnitLabels{Labels: map[string]string{"k0": "w"}}).
			then(&logbookv1.UnitLabelsSet{Labels: map[string]string{"k0": "w"}})},
		{"remove present, skip absent, sorted", given(registered, labelled).
			when(&logbookv1.RemoveUnitLabels{Keys: []string{"site", "nope", "rack", "site"}}).
			then(&logbookv1.UnitLabelsRemoved{Keys: []string{"rack", "site"}})},
		{"remove absent is a no-op", given(registered, labelled).
			when(&logbookv1.RemoveUnitLabels{Keys: []string{"nope"}}).then()},
		{"remove invalid key", given(registered, labelled).
			when(&logbookv1.RemoveUnitLabels{Keys: []string{"bad key"}}).thenErr(unit.ErrInvalidLabel)},
	})
}

func TestChannel(t *testing.T) {
	runSpecs(t, []spec{
		{"assign sets the desired release", given(registered).
			when(&logbookv1.AssignUnitChannel{Channel: "stable", Facts: channelFacts("stable", "2026.11.1")}).
			then(onStable...)},
		{"assign a channel with no release yet", given(registered).
			when(&logbookv1.AssignUnitChannel{Channel: "edge", Facts: channelFacts("edge", "")}).
			then(&logbookv1.UnitChannelAssigned{Channel: "edge"})},
		{"reassign to another channel", given(evs(registered, onStable)...).
			when(&logbookv1.AssignUnitChannel{Channel: "beta", Facts: channelFacts("beta", "2026.12.0")}).
			then(&logbookv1.UnitChannelAssigned{Channel: "beta", Previous: "stable", ChannelRelease: "2026.12.0"},
				&logbookv1.UnitDesiredReleaseChanged{Release: "2026.12.0", Previous: "2026.11.1"})},
		{"reassign while pinned keeps the pin", given(evs(registered, onStable, pinnedTo2)...).
			when(&logbookv1.AssignUnitChannel{Channel: "beta", Facts: channelFacts("beta", "2026.12.0")}).
			then(&logbookv1.UnitChannelAssigned{Channel: "beta", Previous: "stable", ChannelRelease: "2026.12.0"})},
		{"assign the same channel again is a no-op", given(evs(registered, onStable)...).
			when(&logbookv1.AssignUnitChannel{Channel: "stable", Facts: channelFacts("stable", "2026.11.1")}).then()},
		{"assign the same channel with a newer release records it", given(evs(registered, onStable)...).
			when(&logbookv1.AssignUnitChannel{Channel: "stable", Facts: channelFacts("stable", "2026.11.3")}).
			then(&logbookv1.UnitChannelReleaseObserved{Channel: "stable", Release: "2026.11.3"},
				&logbookv1.UnitDesiredReleaseChanged{Release: "2026.11.3", Previous: "2026.11.1"})},
		{"assign without facts", given(registered).
			when(&logbookv1.AssignUnitChannel{Channel: "stable"}).thenErr(unit.ErrInvalidChannel)},
		{"assign with facts about another channel", given(registered).
			when(&logbookv1.AssignUnitChannel{Channel: "stable", Facts: channelFacts("beta", "")}).thenErr(unit.ErrInvalidChannel)},
		{"assign a channel that does not exist", given(registered).
			when(&logbookv1.AssignUnitChannel{Channel: "stable", Facts: &logbookv1.UnitChannelFacts{Name: "stable"}}).thenErr(unit.ErrInvalidChannel)},
		{"assign an invalid channel name", given(registered).
			when(&logbookv1.AssignUnitChannel{Channel: "sta ble", Facts: channelFacts("sta ble", "")}).thenErr(unit.ErrInvalidChannel)},
		{"assign with an invalid channel release", given(registered).
			when(&logbookv1.AssignUnitChannel{Channel: "stable", Facts: channelFacts("stable", "1 2")}).thenErr(unit.ErrInvalidRelease)},

		{"observe a new channel release", given(evs(registered, onStable)...).
			when(&logbookv1.ObserveUnitChannelRelease{Channel: "stable", Release: "2026.11.3"}).
			then(&logbookv1.UnitChannelReleaseObserved{Channel: "stable", Release: "2026.11.3"},
				&logbookv1.UnitDesiredReleaseChanged{Release: "2026.11.3", Previous: "2026.11.1"})},
		{"observe while pinned changes nothing desired", given(evs(registered, onStable, pinnedTo2)...).
			when(&logbookv1.ObserveUnitChannelRelease{Channel: "stable", Release: "2026.11.3"}).
			then(&logbookv1.UnitChannelReleaseObserved{Channel: "stable", Release: "2026.11.3"})},
		{"observe the same release is a no-op", given(evs(registered, onStable)...).
			when(&logbookv1.ObserveUnitChannelRelease{Channel: "stable", Release: "2026.11.1"}).then()},
		{"observe another channel (stale fan-out)", given(evs(registered, onStable)...).
			when(&logbookv1.ObserveUnitChannelRelease{Channel: "beta", Release: "2026.12.0"}).thenErr(unit.ErrChannelMismatch)},
		{"observe with no channel assigned", given(registered).
			when(&logbookv1.ObserveUnitChannelRelease{Channel: "beta", Release: "2026.12.0"}).thenErr(unit.ErrChannelMismatch)},
		{"observe an invalid release", given(evs(registered, onStable)...).
			when(&logbookv1.ObserveUnitChannelRelease{Channel: "stable", Release: "a*"}).thenErr(unit.ErrInvalidRelease)},
		{"observe an empty channel", given(evs(registered, onStable)...).
			when(&logbookv1.ObserveUnitChannelRelease{Release: "2026.11.3"}).thenErr(unit.ErrInvalidChannel)},
	})
}

func TestPin(t *testing.T) {
	runSpecs(t, []spec{
		{"pin overrides the channel", given(evs(registered, onStable)...).
			when(&logbookv1.PinUnitRelease{Release: "2026.11.2", Facts: releaseFacts("2026.11.2")}).
			then(pinnedTo2...)},
		{"pin without a channel", given(registered).
			when(&logbookv1.PinUnitRelease{Release: "2026.11.2", Facts: releaseFacts("2026.11.2")}).
			then(&logbookv1.UnitReleasePinned{Release: "2026.11.2", By: principal},
				&logbookv1.UnitDesiredReleaseChanged{Release: "2026.11.2"})},
		{"pin the channel's release changes nothing desired", given(evs(registered, onStable)...).
			when(&logbookv1.PinUnitRelease{Release: "2026.11.1", Facts: releaseFacts("2026.11.1")}).
			then(&logbookv1.UnitReleasePinned{Release: "2026.11.1", By: principal})},
		{"pin again is a no-op", given(evs(registered, onStable, pinnedTo2)...).
			when(&logbookv1.PinUnitRelease{Release: "2026.11.2", Facts: releaseFacts("2026.11.2")}).then()},
		{"pin without facts", given(registered).
			when(&logbookv1.PinUnitRelease{Release: "2026.11.2"}).thenErr(unit.ErrInvalidRelease)},
		{"pin with facts about another release", given(registered).
			when(&logbookv1.PinUnitRelease{Release: "2026.11.2", Facts: releaseFacts("2026.11.1")}).thenErr(unit.ErrInvalidRelease)},
		{"pin an unpublished release", given(registered).
			when(&logbookv1.PinUnitRelease{Release: "2026.11.2", Facts: &logbookv1.UnitReleaseFacts{Version: "2026.11.2"}}).thenErr(unit.ErrInvalidRelease)},
		{"pin a yanked release", given(registered).
			when(&logbookv1.PinUnitRelease{Release: "2026.11.2", Facts: &logbookv1.UnitReleaseFacts{Version: "2026.11.2", Published: true, Yanked: true}}).thenErr(unit.ErrInvalidRelease)},
		{"pin an empty release", given(registered).
			when(&logbookv1.PinUnitRelease{Facts: releaseFacts("")}).thenErr(unit.ErrInvalidRelease)},

		{"unpin falls back to the channel", given(evs(registered, onStable, pinnedTo2)...).
			when(&logbookv1.UnpinUnitRelease{}).
			then(&logbookv1.UnitReleaseUnpinned{Release: "2026.11.2", By: principal},
				&logbookv1.UnitDesiredReleaseChanged{Release: "2026.11.1", Previous: "2026.11.2"})},
		{"unpin without a channel leaves no desired release", given(registered,
			&logbookv1.UnitReleasePinned{Release: "2026.11.2"}, &logbookv1.UnitDesiredReleaseChanged{Release: "2026.11.2"}).
			when(&logbookv1.UnpinUnitRelease{}).
			then(&logbookv1.UnitReleaseUnpinned{Release: "2026.11.2", By: principal},
				&logbookv1.UnitDesiredReleaseChanged{Previous: "2026.11.2"})},
		{"unpin when not pinned is a no-op", given(evs(registered, onStable)...).
			when(&logbookv1.UnpinUnitRelease{}).then()},
	})
}

func TestConnectivity(t *testing.T) {
	runSpecs(t, []spec{
		{"connect", given(registered).
			when(&logbookv1.RecordUnitConnected{SessionId: "s1", AgentVersion: "1.0.0"}).
			then(&logbookv1.UnitConnected{SessionId: "s1", AgentVersion: "1.0.0", At: ts(0)})},
		{"same session again is a no-op", given(registered, connectedS1).
			when(&logbookv1.RecordUnitConnected{SessionId: "s1", AgentVersion: "1.0.0"}).then()},
		{"new session is a reconnection", given(registered, connectedS1).
			when(&logbookv1.RecordUnitConnected{SessionId: "s2", AgentVersion: "1.0.1"}).
			then(&logbookv1.UnitConnected{SessionId: "s2", AgentVersion: "1.0.1", At: ts(0)})},
		{"connect without session", given(registered).
			when(&logbookv1.RecordUnitConnected{}).thenErr(unit.ErrInvalidReport)},
		{"connect with a bad session id", given(registered).
			when(&logbookv1.RecordUnitConnected{SessionId: "s\x00"}).thenErr(unit.ErrInvalidReport)},

		{"disconnect", given(registered, connectedS1).
			when(&logbookv1.RecordUnitDisconnected{SessionId: "s1", Reason: "keepalive timeout"}).
			then(&logbookv1.UnitDisconnected{SessionId: "s1", Reason: "keepalive timeout", At: ts(0)})},
		{"disconnect of an old session is a no-op", given(registered, connectedS1).
			when(&logbookv1.RecordUnitDisconnected{SessionId: "s0"}).then()},
		{"disconnect when disconnected is a no-op", given(registered).
			when(&logbookv1.RecordUnitDisconnected{SessionId: "s1"}).then()},
		{"disconnect without session", given(registered, connectedS1).
			when(&logbookv1.RecordUnitDisconnected{}).thenErr(unit.ErrInvalidReport)},

		{"first heartbeat", given(registered).
			when(&logbookv1.RecordUnitHeartbeat{}).then(&logbookv1.UnitHeartbeatReceived{At: ts(0)})},
		{"heartbeat within the resolution is a no-op", given(registered, connectedS1).
			when(&logbookv1.RecordUnitHeartbeat{}).at(-time.Second).then()},
		{"heartbeat after the resolution", given(registered, connectedS1).
			when(&logbookv1.RecordUnitHeartbeat{}).at(unit.HeartbeatResolution - time.Minute).
			then(&logbookv1.UnitHeartbeatReceived{At: ts(unit.HeartbeatResolution - time.Minute)})},
	})
}

func TestReports(t *testing.T) {
	nginx := &logbookv1.UnitProcessReport{Method: "syslogforwarding", Domain: "nginx", Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING}
	apache := &logbookv1.UnitProcessReport{Method: "syslogforwarding", Domain: "apache", Status: logbookv1.ProcessStatus_PROCESS_STATUS_FAILED, RestartCount: 3}
	reported := &logbookv1.UnitProcessesReported{Processes: []*logbookv1.UnitProcessReport{apache, nginx}, At: ts(-time.Minute)}
	runSpecs(t, []spec{
		{"report release", given(evs(registered, onStable)...).
			when(&logbookv1.ReportUnitRelease{Release: "2026.11.1"}).
			then(&logbookv1.UnitReleaseReported{Release: "2026.11.1", At: ts(0)})},
		{"report a new release", given(registered, &logbookv1.UnitReleaseReported{Release: "2026.11.0"}).
			when(&logbookv1.ReportUnitRelease{Release: "2026.11.1"}).
			then(&logbookv1.UnitReleaseReported{Release: "2026.11.1", Previous: "2026.11.0", At: ts(0)})},
		{"report the same release is a no-op", given(registered, &logbookv1.UnitReleaseReported{Release: "2026.11.0"}).
			when(&logbookv1.ReportUnitRelease{Release: "2026.11.0"}).then()},
		{"report an empty release", given(registered).
			when(&logbookv1.ReportUnitRelease{}).thenErr(unit.ErrInvalidReport)},

		{"report processes (sorted)", given(registered).
			when(&logbookv1.ReportUnitProcesses{Processes: []*logbookv1.UnitProcessReport{nginx, apache}}).
			then(&logbookv1.UnitProcessesReported{Processes: []*logbookv1.UnitProcessReport{apache, nginx}, At: ts(0)})},
		{"report the same processes is a no-op", given(registered, reported).
			when(&logbookv1.ReportUnitProcesses{Processes: []*logbookv1.UnitProcessReport{nginx, apache}}).then()},
		{"report a changed process", given(registered, reported).
			when(&logbookv1.ReportUnitProcesses{Processes: []*logbookv1.UnitProcessReport{nginx}}).
			then(&logbookv1.UnitProcessesReported{Processes: []*logbookv1.UnitProcessReport{nginx}, At: ts(0)})},
		{"report no processes after some", given(registered, reported).
			when(&logbookv1.ReportUnitProcesses{}).
			then(&logbookv1.UnitProcessesReported{At: ts(0)})},
		{"report a process twice", given(registered).
			when(&logbookv1.ReportUnitProcesses{Processes: []*logbookv1.UnitProcessReport{nginx, nginx}}).thenErr(unit.ErrInvalidReport)},
		{"report a process without status", given(registered).
			when(&logbookv1.ReportUnitProcesses{Processes: []*logbookv1.UnitProcessReport{{Method: "m", Domain: "d"}}}).thenErr(unit.ErrInvalidReport)},
		{"report a process with a bad domain", given(registered).
			when(&logbookv1.ReportUnitProcesses{Processes: []*logbookv1.UnitProcessReport{{Method: "m", Domain: "a.b", Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING}}}).thenErr(unit.ErrInvalidReport)},
	})
}

func TestDecommission(t *testing.T) {
	runSpecs(t, []spec{
		{"decommission", given(registered, connectedS1).
			when(&logbookv1.DecommissionUnit{Reason: "sunk"}).
			then(&logbookv1.UnitDecommissioned{Reason: "sunk", At: ts(0), By: principal})},
		{"decommission cancels pending commands", given(registered, issued("c1", time.Hour), issued("c2", time.Hour)).
			when(&logbookv1.DecommissionUnit{Reason: "sunk"}).
			then(&logbookv1.UnitCommandCancelled{CommandId: "c1", Reason: "unit decommissioned", At: ts(0)},
				&logbookv1.UnitCommandCancelled{CommandId: "c2", Reason: "unit decommissioned", At: ts(0)},
				&logbookv1.UnitDecommissioned{Reason: "sunk", At: ts(0), By: principal})},
		{"decommission without a reason", given(registered).
			when(&logbookv1.DecommissionUnit{Reason: " "}).thenErr(unit.ErrReasonRequired)},
		{"decommission twice", given(registered, decommissioned).
			when(&logbookv1.DecommissionUnit{Reason: "again"}).thenErr(unit.ErrDecommissioned)},
	})
}

// allCommands is one valid instance of every command but RegisterUnit.
func allCommands() []proto.Message {
	return []proto.Message{
		&logbookv1.SetUnitLabels{Labels: map[string]string{"k": "v"}},
		&logbookv1.RemoveUnitLabels{Keys: []string{"site"}},
		&logbookv1.AssignUnitChannel{Channel: "stable", Facts: channelFacts("stable", "2026.11.1")},
		&logbookv1.ObserveUnitChannelRelease{Channel: "stable", Release: "2026.11.3"},
		&logbookv1.PinUnitRelease{Release: "2026.11.2", Facts: releaseFacts("2026.11.2")},
		&logbookv1.UnpinUnitRelease{},
		&logbookv1.RecordUnitConnected{SessionId: "s1"},
		&logbookv1.RecordUnitDisconnected{SessionId: "s1"},
		&logbookv1.RecordUnitHeartbeat{},
		&logbookv1.ReportUnitRelease{Release: "2026.11.1"},
		&logbookv1.ReportUnitProcesses{},
		&logbookv1.DecommissionUnit{Reason: "again"},
		&logbookv1.IssueUnitCommand{CommandId: "c9", Method: "m", Domain: "d", Deadline: ts(time.Hour)},
		&logbookv1.MarkUnitCommandDelivered{CommandId: "c1"},
		&logbookv1.RecordUnitCommandResult{CommandId: "c1"},
		&logbookv1.ExpireUnitCommand{CommandId: "c1"},
	}
}

func TestInactiveUnitsRefuseEverything(t *testing.T) {
	for _, cmd := range allCommands() {
		name := string(cmd.ProtoReflect().Descriptor().Name())
		t.Run("unregistered "+name, func(t *testing.T) {
			given().when(cmd).thenErr(unit.ErrNotRegistered).run(t, "ship1")
		})
		t.Run("decommissioned "+name, func(t *testing.T) {
			given(evs(registered, labelled, onStable, connectedS1, issued("c1", time.Hour),
				&logbookv1.UnitCommandCancelled{CommandId: "c1"}, decommissioned)...).
				when(cmd).thenErr(unit.ErrDecommissioned).run(t, "ship1")
		})
	}
}

func TestUnsupported(t *testing.T) {
	runSpecs(t, []spec{
		{"an event is not a command", given(registered).when(&logbookv1.UnitRegistered{}).thenErr(unit.ErrUnsupported)},
		{"another kind's command", given().when(&logbookv1.SetProcessDesiredStatus{}).thenErr(unit.ErrUnsupported)},
	})
}

func TestIssue(t *testing.T) {
	valid := func(mod func(c *logbookv1.IssueUnitCommand)) *logbookv1.IssueUnitCommand {
		c := &logbookv1.IssueUnitCommand{
			CommandId: "c1", Method: "shellcommand", Domain: "operatingsystem",
			Args: []string{"uptime"}, Payload: []byte("x"), Deadline: ts(time.Hour), Signature: []byte("sig"),
		}
		if mod != nil {
			mod(c)
		}
		return c
	}
	full := make([]proto.Message, 0, unit.MaxPendingCommands+1)
	full = append(full, registered)
	for i := range unit.MaxPendingCommands {
		full = append(full, issued(fmt.Sprintf("p%d", i), time.Hour))
	}
	runSpecs(t, []spec{
		{"issue", given(registered).when(valid(nil)).
			then(&logbookv1.UnitCommandIssued{
				CommandId: "c1", Method: "shellcommand", Domain: "operatingsystem", Args: []string{"uptime"},
				Payload: []byte("x"), Deadline: ts(time.Hour), Signature: []byte("sig"), IssuedAt: ts(0), IssuedBy: principal,
			})},
		{"issue to a disconnected unit (store and forward)", given(registered, connectedS1,
			&logbookv1.UnitDisconnected{SessionId: "s1"}).when(valid(func(c *logbookv1.IssueUnitCommand) { c.Args, c.Payload, c.Signature = nil, nil, nil })).
			then(&logbookv1.UnitCommandIssued{
				CommandId: "c1", Method: "shellcommand", Domain: "operatingsystem",
				Deadline: ts(time.Hour), IssuedAt: ts(0), IssuedBy: principal,
			})},
		{"duplicate of a pending command", given(registered, issued("c1", time.Hour)).when(valid(nil)).thenErr(unit.ErrDuplicateCommand)},
		{"duplicate of a finished command", given(registered, issued("c1", time.Hour), &logbookv1.UnitCommandSucceeded{CommandId: "c1"}).
			when(valid(nil)).thenErr(unit.ErrDuplicateCommand)},
		{"deadline in the past", given(registered).
			when(valid(func(c *logbookv1.IssueUnitCommand) { c.Deadline = ts(-time.Second) })).thenErr(unit.ErrDeadlinePassed)},
		{"deadline now", given(registered).
			when(valid(func(c *logbookv1.IssueUnitCommand) { c.Deadline = ts(0) })).thenErr(unit.ErrDeadlinePassed)},
		{"no deadline", given(registered).
			when(valid(func(c *logbookv1.IssueUnitCommand) { c.Deadline = nil })).thenErr(unit.ErrInvalidCommand)},
		{"invalid deadline", given(registered).
			when(valid(func(c *logbookv1.IssueUnitCommand) { c.Deadline = &timestamppb.Timestamp{Seconds: 1 << 62} })).thenErr(unit.ErrInvalidCommand)},
		{"empty id", given(registered).
			when(valid(func(c *logbookv1.IssueUnitCommand) { c.CommandId = "" })).thenErr(unit.ErrInvalidCommand)},
		{"id with a space", given(registered).
			when(valid(func(c *logbookv1.IssueUnitCommand) { c.CommandId = "c 1" })).thenErr(unit.ErrInvalidCommand)},
		{"id too long", given(registered).
			when(valid(func(c *logbookv1.IssueUnitCommand) { c.CommandId = strings.Repeat("c", unit.MaxCommandIDLen+1) })).thenErr(unit.ErrInvalidCommand)},
		{"method with a dot", given(registered).
			when(valid(func(c *logbookv1.IssueUnitCommand) { c.Method = "shell.command" })).thenErr(unit.ErrInvalidCommand)},
		{"wildcard domain", given(registered).
			when(valid(func(c *logbookv1.IssueUnitCommand) { c.Domain = ">" })).thenErr(unit.ErrInvalidCommand)},
		{"input too large", given(registered).
			when(valid(func(c *logbookv1.IssueUnitCommand) { c.Payload = make([]byte, unit.MaxCommandInputBytes) })).thenErr(unit.ErrInvalidCommand)},
		{"arg not UTF-8", given(registered).
			when(valid(func(c *logbookv1.IssueUnitCommand) { c.Args = []string{"\xff"} })).thenErr(unit.ErrInvalidCommand)},
		{"signature too large", given(registered).
			when(valid(func(c *logbookv1.IssueUnitCommand) { c.Signature = make([]byte, unit.MaxSignatureBytes+1) })).thenErr(unit.ErrInvalidCommand)},
		{"too many pending", given(full...).when(valid(nil)).thenErr(unit.ErrTooManyPending)},
	})
}

func TestDeliver(t *testing.T) {
	delivered := &logbookv1.UnitCommandDelivered{CommandId: "c1", At: ts(-30 * time.Second)}
	runSpecs(t, []spec{
		{"deliver", given(registered, issued("c1", time.Hour)).
			when(&logbookv1.MarkUnitCommandDelivered{CommandId: "c1"}).
			then(&logbookv1.UnitCommandDelivered{CommandId: "c1", At: ts(0)})},
		{"deliver again is a no-op", given(registered, issued("c1", time.Hour), delivered).
			when(&logbookv1.MarkUnitCommandDelivered{CommandId: "c1"}).then()},
		{"late ACK after the result is a no-op", given(registered, issued("c1", time.Hour), &logbookv1.UnitCommandSucceeded{CommandId: "c1"}).
			when(&logbookv1.MarkUnitCommandDelivered{CommandId: "c1"}).then()},
		{"deliver an unknown command", given(registered, issued("c1", time.Hour)).
			when(&logbookv1.MarkUnitCommandDelivered{CommandId: "c2"}).thenErr(unit.ErrUnknownCommand)},
		{"deliver without id", given(registered).
			when(&logbookv1.MarkUnitCommandDelivered{}).thenErr(unit.ErrInvalidCommand)},
	})
}

func TestResult(t *testing.T) {
	long := make([]byte, unit.MaxOutputBytes+10)
	runSpecs(t, []spec{
		{"success", given(registered, issued("c1", time.Hour), &logbookv1.UnitCommandDelivered{CommandId: "c1"}).
			when(&logbookv1.RecordUnitCommandResult{CommandId: "c1", Output: []byte("up 3 days")}).
			then(&logbookv1.UnitCommandSucceeded{CommandId: "c1", Output: []byte("up 3 days"), At: ts(0)})},
		{"success without a recorded delivery", given(registered, issued("c1", time.Hour)).
			when(&logbookv1.RecordUnitCommandResult{CommandId: "c1"}).
			then(&logbookv1.UnitCommandSucceeded{CommandId: "c1", At: ts(0)})},
		{"failure by exit code", given(registered, issued("c1", time.Hour)).
			when(&logbookv1.RecordUnitCommandResult{CommandId: "c1", ExitCode: 2, Output: []byte("no")}).
			then(&logbookv1.UnitCommandFailed{CommandId: "c1", ExitCode: 2, Output: []byte("no"), At: ts(0)})},
		{"failure by error", given(registered, issued("c1", time.Hour)).
			when(&logbookv1.RecordUnitCommandResult{CommandId: "c1", Error: "unknown method"}).
			then(&logbookv1.UnitCommandFailed{CommandId: "c1", Error: "unknown method", At: ts(0)})},
		{"agent error text is made valid and cut", given(registered, issued("c1", time.Hour)).
			when(&logbookv1.RecordUnitCommandResult{CommandId: "c1", Error: "bad\xff" + strings.Repeat("é", unit.MaxTextLen)}).
			then(&logbookv1.UnitCommandFailed{CommandId: "c1", Error: "bad\uFFFD" + strings.Repeat("é", (unit.MaxTextLen-6)/2), At: ts(0)})},
		{"long output is truncated", given(registered, issued("c1", time.Hour)).
			when(&logbookv1.RecordUnitCommandResult{CommandId: "c1", Output: long}).
			then(&logbookv1.UnitCommandSucceeded{CommandId: "c1", Output: long[:unit.MaxOutputBytes], OutputTruncated: true, At: ts(0)})},
		{"output the agent already cut stays marked", given(registered, issued("c1", time.Hour)).
			when(&logbookv1.RecordUnitCommandResult{CommandId: "c1", Output: []byte("abc"), OutputTruncated: true}).
			then(&logbookv1.UnitCommandSucceeded{CommandId: "c1", Output: []byte("abc"), OutputTruncated: true, At: ts(0)})},
		{"complete twice", given(registered, issued("c1", time.Hour), &logbookv1.UnitCommandSucceeded{CommandId: "c1"}).
			when(&logbookv1.RecordUnitCommandResult{CommandId: "c1"}).thenErr(unit.ErrCommandFinished)},
		{"complete after expiry", given(registered, issued("c1", time.Hour), &logbookv1.UnitCommandExpired{CommandId: "c1"}).
			when(&logbookv1.RecordUnitCommandResult{CommandId: "c1"}).thenErr(unit.ErrCommandFinished)},
		{"complete an unknown command", given(registered).
			when(&logbookv1.RecordUnitCommandResult{CommandId: "c1"}).thenErr(unit.ErrUnknownCommand)},
	})
}

func TestExpire(t *testing.T) {
	runSpecs(t, []spec{
		{"expire at the deadline", given(registered, issued("c1", time.Hour)).
			when(&logbookv1.ExpireUnitCommand{CommandId: "c1"}).at(time.Hour).
			then(&logbookv1.UnitCommandExpired{CommandId: "c1", Deadline: ts(time.Hour), At: ts(time.Hour)})},
		{"expire a delivered command after the deadline", given(registered, issued("c1", time.Hour), &logbookv1.UnitCommandDelivered{CommandId: "c1"}).
			when(&logbookv1.ExpireUnitCommand{CommandId: "c1"}).at(2 * time.Hour).
			then(&logbookv1.UnitCommandExpired{CommandId: "c1", Deadline: ts(time.Hour), At: ts(2 * time.Hour)})},
		{"expire before the deadline", given(registered, issued("c1", time.Hour)).
			when(&logbookv1.ExpireUnitCommand{CommandId: "c1"}).at(time.Hour - time.Nanosecond).thenErr(unit.ErrNotDue)},
		{"expire a finished command", given(registered, issued("c1", time.Hour), &logbookv1.UnitCommandFailed{CommandId: "c1"}).
			when(&logbookv1.ExpireUnitCommand{CommandId: "c1"}).at(2 * time.Hour).thenErr(unit.ErrCommandFinished)},
		{"expire twice", given(registered, issued("c1", time.Hour), &logbookv1.UnitCommandExpired{CommandId: "c1"}).
			when(&logbookv1.ExpireUnitCommand{CommandId: "c1"}).at(2 * time.Hour).thenErr(unit.ErrCommandFinished)},
		{"expire an unknown command", given(registered).
			when(&logbookv1.ExpireUnitCommand{CommandId: "c1"}).at(2 * time.Hour).thenErr(unit.ErrUnknownCommand)},
	})
}

func TestDue(t *testing.T) {
	s := unit.New("ship1")
	for _, e := range evs(registered, issued("a", time.Hour), issued("b", time.Minute), issued("c", 2*time.Hour)) {
		s = unit.Evolve(s, e)
	}
	got := unit.Due(s, t0.Add(time.Hour))
	if strings.Join(got, ",") != "a,b" {
		t.Errorf("Due = %v, want [a b]", got)
	}
}

// fold applies evs to a new unit ship1.
func fold(evs ...proto.Message) *logbookv1.UnitState {
	s := unit.New("ship1")
	for _, e := range evs {
		s = unit.Evolve(s, e)
	}
	return s
}

func TestEvolveFoldsHistory(t *testing.T) {
	got := fold(evs(
		registered, labelled,
		&logbookv1.UnitLabelsRemoved{Keys: []string{"rack"}},
		onStable, pinnedTo2,
		connectedS1,
		&logbookv1.UnitReleaseReported{Release: "2026.11.1", At: ts(-50 * time.Second)},
		&logbookv1.UnitProcessesReported{Processes: []*logbookv1.UnitProcessReport{
			{Method: "syslogforwarding", Domain: "nginx", Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING},
		}, At: ts(-40 * time.Second)},
		issued("c1", time.Hour), issued("c2", time.Hour), issued("c3", time.Minute),
		&logbookv1.UnitCommandDelivered{CommandId: "c1", At: ts(-30 * time.Second)},
		&logbookv1.UnitCommandDelivered{CommandId: "c2", At: ts(-30 * time.Second)},
		&logbookv1.UnitCommandSucceeded{CommandId: "c1", Output: []byte("ok"), At: ts(-20 * time.Second)},
		&logbookv1.UnitCommandExpired{CommandId: "c3", Deadline: ts(time.Minute), At: ts(time.Minute)},
		&logbookv1.UnitHeartbeatReceived{At: ts(-10 * time.Second)}, // older than the expiry: last_seen stays
		&logbookv1.UnitDisconnected{SessionId: "s1", At: ts(-5 * time.Second)},
		&logbookv1.ProcessStatusReported{}, // events of other kinds change nothing
	)...)
	want := &logbookv1.UnitState{
		Name: "ship1", Status: logbookv1.UnitStatus_UNIT_STATUS_ACTIVE,
		RegisteredAt: ts(-time.Hour), RegisteredBy: principal, Platform: "linux/arm64",
		Labels:  map[string]string{"site": "north"},
		Channel: "stable", ChannelRelease: "2026.11.1", PinnedRelease: "2026.11.2", DesiredRelease: "2026.11.2",
		ReportedRelease: "2026.11.1",
		Processes: map[string]*logbookv1.UnitProcessReport{
			"syslogforwarding.nginx": {Method: "syslogforwarding", Domain: "nginx", Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING},
		},
		Connected: false, SessionId: "s1", AgentVersion: "1.0.0",
		LastSeen: ts(-5 * time.Second),
		Pending: []*logbookv1.UnitCommand{{
			CommandId: "c2", Method: "shellcommand", Domain: "operatingsystem", Args: []string{"uptime"},
			Deadline: ts(time.Hour), IssuedBy: principal, IssuedAt: ts(-time.Minute),
			Status: logbookv1.UnitCommandStatus_UNIT_COMMAND_STATUS_DELIVERED, DeliveredAt: ts(-30 * time.Second),
		}},
		Finished: []*logbookv1.UnitCommand{
			{
				CommandId: "c1", Method: "shellcommand", Domain: "operatingsystem",
				Deadline: ts(time.Hour), IssuedBy: principal, IssuedAt: ts(-time.Minute),
				Status: logbookv1.UnitCommandStatus_UNIT_COMMAND_STATUS_SUCCEEDED, DeliveredAt: ts(-30 * time.Second), FinishedAt: ts(-20 * time.Second),
			},
			{
				CommandId: "c3", Method: "shellcommand", Domain: "operatingsystem",
				Deadline: ts(time.Minute), IssuedBy: principal, IssuedAt: ts(-time.Minute),
				Status: logbookv1.UnitCommandStatus_UNIT_COMMAND_STATUS_EXPIRED, FinishedAt: ts(time.Minute),
			},
		},
	}
	if !proto.Equal(got, want) {
		t.Fatalf("state:\n got: %s\nwant: %s", show(got), show(want))
	}

	dec := unit.Evolve(got, decommissioned)
	if dec.GetStatus() != logbookv1.UnitStatus_UNIT_STATUS_DECOMMISSIONED || dec.GetConnected() || !proto.Equal(dec.GetDecommissionedAt(), decommissioned.GetAt()) {
		t.Errorf("after UnitDecommissioned: %s", show(dec))
	}
}

func TestFinishedCommandsAreBounded(t *testing.T) {
	s := fold(registered)
	const n = unit.MaxFinishedCommands + 20
	for i := range n {
		id := fmt.Sprintf("c%d", i)
		s = unit.Evolve(s, issued(id, time.Hour))
		s = unit.Evolve(s, &logbookv1.UnitCommandFailed{CommandId: id, ExitCode: 1})
	}
	if len(s.GetPending()) != 0 || len(s.GetFinished()) != unit.MaxFinishedCommands {
		t.Fatalf("pending %d, finished %d; want 0, %d", len(s.GetPending()), len(s.GetFinished()), unit.MaxFinishedCommands)
	}
	if first := s.GetFinished()[0].GetCommandId(); first != fmt.Sprintf("c%d", n-unit.MaxFinishedCommands) {
		t.Errorf("oldest kept = %s", first)
	}
	if f := s.GetFinished()[0]; f.GetArgs() != nil || f.GetExitCode() != 1 {
		t.Errorf("finished command keeps args or lost its exit code: %s", show(f))
	}
	// A command id that aged out of the window is unknown again.
	_, err := unit.Decide(s, &logbookv1.ExpireUnitCommand{CommandId: "c0"}, actors.Env{Now: t0.Add(2 * time.Hour)})
	if !errors.Is(err, unit.ErrUnknownCommand) {
		t.Errorf("expire aged-out command: %v, want ErrUnknownCommand", err)
	}
}

func TestKind(t *testing.T) {
	k := unit.Kind
	if k.Category != "unit" {
		t.Errorf("Category = %q", k.Category)
	}
	st := k.New("ship1")
	evs, err := k.Decide(st, &logbookv1.RegisterUnit{}, actors.Env{Now: t0, Principal: principal})
	if err != nil || len(evs) != 1 {
		t.Fatalf("Decide via Kind: %v, %v", evs, err)
	}
	st = k.Evolve(st, evs[0])
	if st.(*logbookv1.UnitState).GetStatus() != logbookv1.UnitStatus_UNIT_STATUS_ACTIVE {
		t.Errorf("Evolve via Kind: %v", st)
	}
	seen := map[string]bool{}
	for _, e := range k.Events {
		name := string(e.ProtoReflect().Descriptor().FullName())
		if seen[name] {
			t.Errorf("event %s listed twice", name)
		}
		seen[name] = true
	}
	// Every message of unit.proto whose name starts with "Unit" and ends
	// in a past participle is an event and must be listed.
	fd := logbookv1.File_logbook_v1_unit_proto
	for i := range fd.Messages().Len() {
		name := string(fd.Messages().Get(i).Name())
		isEvent := strings.HasPrefix(name, "Unit") && (strings.HasSuffix(name, "ed") || strings.HasSuffix(name, "Set"))
		if isEvent && !seen["logbook.v1."+name] {
			t.Errorf("event %s is not in Kind.Events", name)
		}
	}
}

func TestErrorsNameTheUnit(t *testing.T) {
	_, err := unit.Decide(fold(registered), &logbookv1.RegisterUnit{}, actors.Env{Now: t0})
	if err == nil || !strings.HasPrefix(err.Error(), "unit ship1: unit already registered") {
		t.Errorf("error = %v", err)
	}
	_, err = unit.Decide(unit.New("bad\nname"), &logbookv1.RegisterUnit{}, actors.Env{Now: t0})
	if err == nil || !strings.HasPrefix(err.Error(), `unit "bad\nname": invalid unit name`) {
		t.Errorf("error = %v", err)
	}
}
