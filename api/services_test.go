package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func TestUnitService(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	try(e.channels.CreateChannel(ctx, connect.NewRequest(&logbookv1.CreateChannelRequest{Channel: "stable"}))).must(t)

	req := connect.NewRequest(&logbookv1.RegisterUnitRequest{Unit: "ship1", Platform: "linux/arm64", Labels: map[string]string{"site": "north"}, Channel: "stable"})
	req.Header().Set("X-Request-Id", "req-42")
	reg := try(e.units.RegisterUnit(ctx, req)).must(t)
	if a := reg.Msg.GetAppended(); a.GetStream() != "unit-ship1" || a.GetEvents() != 2 || a.GetPosition() == 0 {
		t.Fatalf("RegisterUnit appended %v", a)
	}
	if got := reg.Header().Get("X-Request-Id"); got != "req-42" {
		t.Errorf("response X-Request-Id = %q", got)
	}
	for _, ev := range e.readStream("unit-ship1") {
		if ev.Metadata.Principal != "admin" || ev.Metadata.CorrelationID != "req-42" {
			t.Errorf("event %s metadata = %+v, want principal admin, correlation req-42", ev.Type, ev.Metadata)
		}
	}

	for _, tc := range []struct {
		name string
		req  *logbookv1.RegisterUnitRequest
		code connect.Code
		msg  string
	}{
		{"twice", &logbookv1.RegisterUnitRequest{Unit: "ship1"}, connect.CodeAlreadyExists, "unit ship1: unit already registered"},
		{"dotted name", &logbookv1.RegisterUnitRequest{Unit: "ship.1"}, connect.CodeInvalidArgument, "contains '.'"},
		{"no name", &logbookv1.RegisterUnitRequest{}, connect.CodeInvalidArgument, "unit: required"},
		{"bad label", &logbookv1.RegisterUnitRequest{Unit: "ship2", Labels: map[string]string{"-x": "y"}}, connect.CodeInvalidArgument, "labels:"},
		{"unknown channel", &logbookv1.RegisterUnitRequest{Unit: "ship2", Channel: "beta"}, connect.CodeNotFound, "channel beta does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.units.RegisterUnit(ctx, connect.NewRequest(tc.req))
			msg := wantCode(t, err, tc.code)
			wantContains(t, msg, tc.msg)
			if strings.Contains(msg, "actors:") || strings.Contains(msg, "refused") {
				t.Errorf("%q has the entity host's prefix", msg)
			}
		})
	}

	got := try(e.units.GetUnit(ctx, connect.NewRequest(&logbookv1.GetUnitRequest{Unit: "ship1"}))).must(t)
	if st := got.Msg.GetState(); st.GetChannel() != "stable" || st.GetLabels()["site"] != "north" || got.Msg.GetVersion() != 2 {
		t.Fatalf("GetUnit = %v", got.Msg)
	}
	_, err := e.units.GetUnit(ctx, connect.NewRequest(&logbookv1.GetUnitRequest{Unit: "ghost"}))
	wantCode(t, err, connect.CodeNotFound)

	try(e.units.SetUnitLabels(ctx, connect.NewRequest(&logbookv1.SetUnitLabelsRequest{Unit: "ship1", Set: map[string]string{"role": "gw"}, Remove: []string{"site"}}))).must(t)
	_, err = e.units.SetUnitLabels(ctx, connect.NewRequest(&logbookv1.SetUnitLabelsRequest{Unit: "ship1"}))
	wantCode(t, err, connect.CodeInvalidArgument)
	_, err = e.units.AssignUnitChannel(ctx, connect.NewRequest(&logbookv1.AssignUnitChannelRequest{Unit: "ship1", Channel: "nope"}))
	wantCode(t, err, connect.CodeNotFound)

	// Pinning needs a published release that is not yanked.
	_, err = e.units.PinUnitRelease(ctx, connect.NewRequest(&logbookv1.PinUnitReleaseRequest{Unit: "ship1", Release: "1.0.0"}))
	wantContains(t, wantCode(t, err, connect.CodeNotFound), "release 1.0.0 is not published")
	try(e.releases.PublishRelease(ctx, connect.NewRequest(publishRequest("1.0.0")))).must(t)
	try(e.units.PinUnitRelease(ctx, connect.NewRequest(&logbookv1.PinUnitReleaseRequest{Unit: "ship1", Release: "1.0.0"}))).must(t)
	try(e.releases.YankRelease(ctx, connect.NewRequest(&logbookv1.YankReleaseRequest{Version: "1.0.0", Reason: "broken"}))).must(t)
	_, err = e.units.PinUnitRelease(ctx, connect.NewRequest(&logbookv1.PinUnitReleaseRequest{Unit: "ship1", Release: "1.0.0"}))
	wantContains(t, wantCode(t, err, connect.CodeFailedPrecondition), "yanked")
	try(e.units.UnpinUnitRelease(ctx, connect.NewRequest(&logbookv1.UnpinUnitReleaseRequest{Unit: "ship1"}))).must(t)

	enrol := try(e.units.CreateEnrolmentToken(ctx, connect.NewRequest(&logbookv1.CreateEnrolmentTokenRequest{Unit: "ship1"}))).must(t)
	if m := enrol.Msg; m.GetToken() != "enrol-ship1" || len(m.GetNatsUrls()) != 1 || len(m.GetSigningKey()) != 32 || m.GetExpiresAt() == nil {
		t.Fatalf("CreateEnrolmentToken = %v", m)
	}
	_, err = e.units.CreateEnrolmentToken(ctx, connect.NewRequest(&logbookv1.CreateEnrolmentTokenRequest{Unit: "ghost"}))
	wantCode(t, err, connect.CodeNotFound)

	e.waitProjected()
	list := try(e.units.ListUnits(ctx, connect.NewRequest(&logbookv1.ListUnitsRequest{Selector: "role=gw"}))).must(t)
	if len(list.Msg.GetUnits()) != 1 || list.Msg.GetUnits()[0].GetName() != "ship1" || list.Msg.GetUnits()[0].GetChannel() != "stable" {
		t.Fatalf("ListUnits = %v", list.Msg)
	}
	_, err = e.units.ListUnits(ctx, connect.NewRequest(&logbookv1.ListUnitsRequest{Selector: "a=b=c"}))
	wantCode(t, err, connect.CodeInvalidArgument)
	_, err = e.units.ListUnits(ctx, connect.NewRequest(&logbookv1.ListUnitsRequest{Limit: 5000}))
	wantCode(t, err, connect.CodeInvalidArgument)

	_, err = e.units.DecommissionUnit(ctx, connect.NewRequest(&logbookv1.DecommissionUnitRequest{Unit: "ship1"}))
	wantContains(t, wantCode(t, err, connect.CodeInvalidArgument), "reason: required")
	try(e.units.DecommissionUnit(ctx, connect.NewRequest(&logbookv1.DecommissionUnitRequest{Unit: "ship1", Reason: "sold"}))).must(t)
	_, err = e.units.SetUnitLabels(ctx, connect.NewRequest(&logbookv1.SetUnitLabelsRequest{Unit: "ship1", Set: map[string]string{"a": "b"}}))
	wantContains(t, wantCode(t, err, connect.CodeFailedPrecondition), "unit ship1: unit decommissioned")
}

func TestReleasesAndChannels(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	for _, v := range []string{"1.0.0", "1.1.0"} {
		try(e.releases.PublishRelease(ctx, connect.NewRequest(publishRequest(v)))).must(t)
	}
	_, err := e.releases.PublishRelease(ctx, connect.NewRequest(publishRequest("1.0.0")))
	wantCode(t, err, connect.CodeAlreadyExists)
	bad := publishRequest("2.0.0")
	bad.Release.Repos = nil
	_, err = e.releases.PublishRelease(ctx, connect.NewRequest(bad))
	wantContains(t, wantCode(t, err, connect.CodeInvalidArgument), "no repositories")
	rel := try(e.releases.GetRelease(ctx, connect.NewRequest(&logbookv1.GetReleaseRequest{Version: "1.1.0"}))).must(t)
	if rel.Msg.GetState().GetPublishedBy() != "admin" || rel.Msg.GetVersion() != 1 {
		t.Fatalf("GetRelease = %v", rel.Msg)
	}

	try(e.channels.CreateChannel(ctx, connect.NewRequest(&logbookv1.CreateChannelRequest{Channel: "stable", Description: "the fleet"}))).must(t)
	_, err = e.channels.CreateChannel(ctx, connect.NewRequest(&logbookv1.CreateChannelRequest{Channel: "stable"}))
	wantCode(t, err, connect.CodeAlreadyExists)
	_, err = e.channels.CreateChannel(ctx, connect.NewRequest(&logbookv1.CreateChannelRequest{Channel: "Stable"}))
	wantCode(t, err, connect.CodeInvalidArgument)
	e.registerUnit("ship1", nil, "stable")
	e.registerUnit("ship2", nil, "stable")
	e.registerUnit("ship3", nil, "")

	promote := func(rel string) *logbookv1.PromoteReleaseResponse {
		t.Helper()
		return try(e.channels.PromoteRelease(ctx, connect.NewRequest(&logbookv1.PromoteReleaseRequest{Channel: "stable", Release: rel, Reason: "tested"}))).must(t).Msg
	}
	if got := promote("1.0.0"); got.GetUnits() != 2 || got.GetAppended().GetEvents() != 1 {
		t.Fatalf("PromoteRelease = %v, want 2 units told", got)
	}
	promote("1.1.0")
	desired := func(name string) string {
		t.Helper()
		return try(e.units.GetUnit(ctx, connect.NewRequest(&logbookv1.GetUnitRequest{Unit: name}))).must(t).Msg.GetState().GetDesiredRelease()
	}
	if d1, d2, d3 := desired("ship1"), desired("ship2"), desired("ship3"); d1 != "1.1.0" || d2 != "1.1.0" || d3 != "" {
		t.Fatalf("desired releases after promotion: %q %q %q", d1, d2, d3)
	}
	// A unit joining the channel gets its current release.
	try(e.units.AssignUnitChannel(ctx, connect.NewRequest(&logbookv1.AssignUnitChannelRequest{Unit: "ship3", Channel: "stable"}))).must(t)
	if d := desired("ship3"); d != "1.1.0" {
		t.Fatalf("ship3 desired %q after joining stable", d)
	}

	rb := try(e.channels.RollbackChannel(ctx, connect.NewRequest(&logbookv1.RollbackChannelRequest{Channel: "stable", Reason: "regression"}))).must(t)
	if rb.Msg.GetRelease() != "1.0.0" {
		t.Fatalf("RollbackChannel = %v", rb.Msg)
	}
	if d := desired("ship3"); d != "1.0.0" {
		t.Fatalf("ship3 desired %q after rollback", d)
	}
	_, err = e.channels.RollbackChannel(ctx, connect.NewRequest(&logbookv1.RollbackChannelRequest{Channel: "stable", Reason: "again"}))
	wantCode(t, err, connect.CodeFailedPrecondition)

	for _, tc := range []struct {
		name string
		req  *logbookv1.PromoteReleaseRequest
		code connect.Code
		msg  string
	}{
		{"no reason", &logbookv1.PromoteReleaseRequest{Channel: "stable", Release: "1.1.0"}, connect.CodeInvalidArgument, "reason: required"},
		{"unknown release", &logbookv1.PromoteReleaseRequest{Channel: "stable", Release: "9.9.9", Reason: "r"}, connect.CodeNotFound, "release 9.9.9 is not published"},
		{"unknown channel", &logbookv1.PromoteReleaseRequest{Channel: "beta", Release: "1.1.0", Reason: "r"}, connect.CodeNotFound, "channel beta does not exist"},
		{"bad version", &logbookv1.PromoteReleaseRequest{Channel: "stable", Release: "1 0", Reason: "r"}, connect.CodeInvalidArgument, "release:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.channels.PromoteRelease(ctx, connect.NewRequest(tc.req))
			wantContains(t, wantCode(t, err, tc.code), tc.msg)
		})
	}
	try(e.releases.YankRelease(ctx, connect.NewRequest(&logbookv1.YankReleaseRequest{Version: "1.1.0", Reason: "cve"}))).must(t)
	_, err = e.channels.PromoteRelease(ctx, connect.NewRequest(&logbookv1.PromoteReleaseRequest{Channel: "stable", Release: "1.1.0", Reason: "r"}))
	wantCode(t, err, connect.CodeFailedPrecondition)
	_, err = e.releases.YankRelease(ctx, connect.NewRequest(&logbookv1.YankReleaseRequest{Version: "1.1.0", Reason: "again"}))
	wantCode(t, err, connect.CodeFailedPrecondition)

	try(e.channels.SetChannelFlag(ctx, connect.NewRequest(&logbookv1.SetChannelFlagRequest{Channel: "stable", Key: "new-ui", Value: "on"}))).must(t)
	try(e.channels.SetChannelFlag(ctx, connect.NewRequest(&logbookv1.SetChannelFlagRequest{Channel: "stable", Key: "old-ui", Value: "on"}))).must(t)
	try(e.channels.SetChannelFlag(ctx, connect.NewRequest(&logbookv1.SetChannelFlagRequest{Channel: "stable", Key: "old-ui", Unset: true}))).must(t)
	_, err = e.channels.SetChannelFlag(ctx, connect.NewRequest(&logbookv1.SetChannelFlagRequest{Channel: "stable", Key: "Bad Key"}))
	wantCode(t, err, connect.CodeInvalidArgument)
	ch := try(e.channels.GetChannel(ctx, connect.NewRequest(&logbookv1.GetChannelRequest{Channel: "stable"}))).must(t)
	if st := ch.Msg.GetState(); st.GetCurrent().GetVersion() != "1.0.0" || len(st.GetFeatureFlags()) != 1 {
		t.Fatalf("GetChannel = %v", ch.Msg)
	}

	e.waitProjected()
	rels := try(e.releases.ListReleases(ctx, connect.NewRequest(&logbookv1.ListReleasesRequest{IncludeYanked: true, Limit: 1}))).must(t)
	if len(rels.Msg.GetReleases()) != 1 || rels.Msg.GetReleases()[0].GetVersion() != "1.1.0" || rels.Msg.GetNext() == 0 {
		t.Fatalf("ListReleases page 1 = %v", rels.Msg)
	}
	rels = try(e.releases.ListReleases(ctx, connect.NewRequest(&logbookv1.ListReleasesRequest{IncludeYanked: true, Limit: 1, After: rels.Msg.GetNext()}))).must(t)
	if len(rels.Msg.GetReleases()) != 1 || rels.Msg.GetReleases()[0].GetVersion() != "1.0.0" {
		t.Fatalf("ListReleases page 2 = %v", rels.Msg)
	}
	chs := try(e.channels.ListChannels(ctx, connect.NewRequest(&logbookv1.ListChannelsRequest{}))).must(t)
	if len(chs.Msg.GetChannels()) != 1 || chs.Msg.GetChannels()[0].GetCurrentRelease() != "1.0.0" {
		t.Fatalf("ListChannels = %v", chs.Msg)
	}
	hist := try(e.channels.ChannelHistory(ctx, connect.NewRequest(&logbookv1.ChannelHistoryRequest{Channel: "stable"}))).must(t)
	if p := hist.Msg.GetPromotions(); len(p) != 3 || p[0].GetKind() != "rollback" || p[0].GetReason() != "regression" {
		t.Fatalf("ChannelHistory = %v", hist.Msg)
	}
}

func TestProcessService(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	e.registerUnit("ship1", nil, "")
	set := &logbookv1.SetProcessRequest{
		Unit: "ship1", Method: "syslogforwarding", Domain: "nginx",
		DesiredStatus: logbookv1.ProcessDesiredStatus_PROCESS_DESIRED_STATUS_RUNNING,
		RestartPolicy: logbookv1.ProcessRestartPolicy_PROCESS_RESTART_POLICY_ALWAYS,
		Config:        map[string]string{"port": "514"}, SetConfig: true,
	}
	res := try(e.procs.SetProcess(ctx, connect.NewRequest(set))).must(t)
	if a := res.Msg.GetAppended(); a.GetEvents() != 3 || a.GetStream() != "process-ship1.syslogforwarding.nginx" {
		t.Fatalf("SetProcess appended %v", a)
	}
	got := try(e.procs.GetProcess(ctx, connect.NewRequest(&logbookv1.GetProcessRequest{Unit: "ship1", Method: "syslogforwarding", Domain: "nginx"}))).must(t)
	if st := got.Msg.GetState(); st.GetConfig()["port"] != "514" || st.GetDesiredChangedBy() != "admin" {
		t.Fatalf("GetProcess = %v", got.Msg)
	}
	for _, tc := range []struct {
		name string
		req  *logbookv1.SetProcessRequest
		code connect.Code
	}{
		{"unknown unit", &logbookv1.SetProcessRequest{Unit: "ghost", Method: "m", Domain: "d", SetConfig: true}, connect.CodeNotFound},
		{"nothing to set", &logbookv1.SetProcessRequest{Unit: "ship1", Method: "m", Domain: "d"}, connect.CodeInvalidArgument},
		{"dotted method", &logbookv1.SetProcessRequest{Unit: "ship1", Method: "a.b", Domain: "d", SetConfig: true}, connect.CodeInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.procs.SetProcess(ctx, connect.NewRequest(tc.req))
			wantCode(t, err, tc.code)
		})
	}
	_, err := e.procs.GetProcess(ctx, connect.NewRequest(&logbookv1.GetProcessRequest{Unit: "ship1", Method: "x", Domain: "y"}))
	wantCode(t, err, connect.CodeNotFound)
	e.waitProjected()
	list := try(e.procs.ListProcesses(ctx, connect.NewRequest(&logbookv1.ListProcessesRequest{Unit: "ship1"}))).must(t)
	if p := list.Msg.GetProcesses(); len(p) != 1 || p[0].GetDesiredStatus() != "running" {
		t.Fatalf("ListProcesses = %v", list.Msg)
	}
}

func TestRunCommandBySelectorAndWait(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	e.registerUnit("ship1", map[string]string{"site": "north"}, "")
	e.registerUnit("ship2", map[string]string{"site": "north"}, "")
	e.registerUnit("ship3", map[string]string{"site": "south"}, "")
	e.waitProjected()

	run := try(e.commands.RunCommand(ctx, connect.NewRequest(&logbookv1.RunCommandRequest{
		Selector: "site=north", Args: []string{"uptime"}, CommandId: "cmd-1",
	}))).must(t).Msg
	if run.GetCommandId() != "cmd-1" || len(run.GetIssued()) != 2 || run.GetIssued()[0].GetUnit() != "ship1" ||
		run.GetIssued()[1].GetUnit() != "ship2" || run.GetIssued()[0].GetError() != "" || run.GetIssued()[1].GetPosition() == 0 {
		t.Fatalf("RunCommand = %v", run)
	}
	// The same id again issues nothing new (idempotency).
	again := try(e.commands.RunCommand(ctx, connect.NewRequest(&logbookv1.RunCommandRequest{
		Selector: "site=north", Args: []string{"uptime"}, CommandId: "cmd-1",
	}))).must(t).Msg
	if again.GetIssued()[0].GetError() != "" || again.GetIssued()[0].GetPosition() != 0 {
		t.Fatalf("repeated RunCommand = %v", again)
	}
	// The same id for another command is refused per unit.
	other := try(e.commands.RunCommand(ctx, connect.NewRequest(&logbookv1.RunCommandRequest{Units: []string{"ship1"}, Args: []string{"reboot"}, CommandId: "cmd-1"}))).must(t).Msg
	wantContains(t, other.GetIssued()[0].GetError(), "already_exists", "another command with id cmd-1")

	cmd, err := e.commands.GetCommand(ctx, connect.NewRequest(&logbookv1.GetCommandRequest{Unit: "ship1", CommandId: "cmd-1"}))
	if err != nil || cmd.Msg.GetCommand().GetStatus() != "issued" || cmd.Msg.GetCommand().GetMethod() != "shellcommand" || cmd.Msg.GetCommand().GetDomain() != "uptime" || len(cmd.Msg.GetCommand().GetArgs()) != 0 {
		t.Fatalf("GetCommand = %v, %v", cmd, err)
	}

	// ship1 answers before anyone waits; ship2 while WaitCommand waits.
	result := func(unitName string, exit int32, out string) {
		t.Helper()
		try(e.host.Execute(ctx, "unit-"+unitName, &logbookv1.RecordUnitCommandResult{CommandId: "cmd-1", ExitCode: exit, Output: []byte(out)},
			events.Metadata{Principal: unitName})).must(t)
	}
	result("ship1", 0, "up 3 days")
	wait, err := e.commands.WaitCommand(ctx, connect.NewRequest(&logbookv1.WaitCommandRequest{Units: []string{"ship2", "ship1"}, CommandId: "cmd-1"}))
	if err != nil {
		t.Fatal(err)
	}
	defer wait.Close()
	if !wait.Receive() {
		t.Fatalf("WaitCommand ended: %v", wait.Err())
	}
	first := wait.Msg()
	if c := first.GetCommand(); c.GetUnit() != "ship1" || c.GetStatus() != "succeeded" || c.GetOutput() != "up 3 days" || first.GetDone() != 1 || first.GetTotal() != 2 {
		t.Fatalf("first result = %v", first)
	}
	result("ship2", 2, "no such command")
	if !wait.Receive() {
		t.Fatalf("WaitCommand ended: %v", wait.Err())
	}
	second := wait.Msg()
	if c := second.GetCommand(); c.GetUnit() != "ship2" || c.GetStatus() != "failed" || c.GetExitCode() != 2 || c.GetDomain() != "uptime" || second.GetDone() != 2 {
		t.Fatalf("second result = %v", second)
	}
	if wait.Receive() {
		t.Fatalf("WaitCommand sent more: %v", wait.Msg())
	}
	if err := wait.Err(); err != nil {
		t.Fatal(err)
	}

	e.waitProjected()
	list := try(e.commands.ListCommands(ctx, connect.NewRequest(&logbookv1.ListCommandsRequest{Status: "failed"}))).must(t)
	if c := list.Msg.GetCommands(); len(c) != 1 || c[0].GetUnit() != "ship2" {
		t.Fatalf("ListCommands = %v", list.Msg)
	}

	for _, tc := range []struct {
		name string
		req  *logbookv1.RunCommandRequest
		code connect.Code
	}{
		{"no target", &logbookv1.RunCommandRequest{}, connect.CodeInvalidArgument},
		{"both targets", &logbookv1.RunCommandRequest{Units: []string{"ship1"}, Selector: "a"}, connect.CodeInvalidArgument},
		{"selector matches nothing", &logbookv1.RunCommandRequest{Selector: "site=west", Args: []string{"uptime"}}, connect.CodeNotFound},
		{"no program", &logbookv1.RunCommandRequest{Units: []string{"ship1"}}, connect.CodeInvalidArgument},
		{"bad method", &logbookv1.RunCommandRequest{Units: []string{"ship1"}, Method: "a.b"}, connect.CodeInvalidArgument},
		{"timeout too long", &logbookv1.RunCommandRequest{Units: []string{"ship1"}, Args: []string{"uptime"}, TimeoutSeconds: 1 << 30}, connect.CodeInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.commands.RunCommand(ctx, connect.NewRequest(tc.req))
			wantCode(t, err, tc.code)
		})
	}
	_, err = e.commands.GetCommand(ctx, connect.NewRequest(&logbookv1.GetCommandRequest{Unit: "ship1", CommandId: "nope"}))
	wantCode(t, err, connect.CodeNotFound)
	unknown, err := e.commands.WaitCommand(ctx, connect.NewRequest(&logbookv1.WaitCommandRequest{Units: []string{"ship3"}, CommandId: "cmd-1"}))
	if err != nil {
		t.Fatal(err)
	}
	for unknown.Receive() {
	}
	wantCode(t, unknown.Err(), connect.CodeNotFound)
}

func TestReadModelNotReady(t *testing.T) {
	// A unit event whose payload does not decode stops the fleet read
	// model before its first catch-up: it never becomes ready.
	e := newEnv(t, func(ctx context.Context, store events.Store) {
		appendRaw(ctx, t, store, "unit-broken", &logbookv1.UnitRegistered{}, []byte{0xff, 0xff, 0xff})
	})
	if err := e.runner.WaitReady(e.ctx, readmodel.FleetName); !errors.Is(err, projections.ErrStopped) {
		t.Fatalf("WaitReady = %v, want ErrStopped", err)
	}
	_, err := e.units.ListUnits(e.ctx, connect.NewRequest(&logbookv1.ListUnitsRequest{}))
	msg := wantCode(t, err, connect.CodeUnavailable)
	// The runner's message as it is, cause included.
	if want := "read model fleet: " + e.runner.Ready(readmodel.FleetName).Error(); msg != want {
		t.Errorf("message %q, want %q", msg, want)
	}
	wantContains(t, msg, "(stopped: ", "unit-broken")

	resp, body := e.httpJSON("/logbook.v1.UnitService/ListUnits", e.admin, `{}`)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("HTTP status %d (%s), want 503", resp.StatusCode, body)
	}
}

func TestJSONOverHTTP(t *testing.T) {
	e := newEnv(t)
	e.registerUnit("ship1", map[string]string{"site": "north"}, "")
	resp, body := e.httpJSON("/logbook.v1.UnitService/GetUnit", e.admin, `{"unit": "ship1"}`)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GetUnit over JSON: %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	wantContains(t, body, `"name":"ship1"`, `"site":"north"`, `"status":"UNIT_STATUS_ACTIVE"`)

	resp, body = e.httpJSON("/logbook.v1.UnitService/GetUnit", "", `{"unit": "ship1"}`)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without token: %d %s", resp.StatusCode, body)
	}
	wantContains(t, body, `"code":"unauthenticated"`)
	resp, body = e.httpJSON("/logbook.v1.UnitService/RegisterUnit", e.admin, `{"unit": "bad name"}`)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("invalid name: %d %s", resp.StatusCode, body)
	}
	wantContains(t, body, `"code":"invalid_argument"`, "whitespace")
}

func TestClusterStatusSingleNode(t *testing.T) {
	e := newEnv(t)
	e.registerUnit("ship1", nil, "")
	head := try(e.store.Head(e.ctx)).must(t)
	st := try(e.cluster.ClusterStatus(e.ctx, connect.NewRequest(&logbookv1.ClusterStatusRequest{}))).must(t).Msg
	if st.GetClustered() || st.GetLeader() != "node1" || len(st.GetMembers()) != 1 || st.GetMembers()[0].GetAppliedPosition() != head.Position {
		t.Fatalf("ClusterStatus = %v", st)
	}
	_, err := e.cluster.RemoveNode(e.ctx, connect.NewRequest(&logbookv1.RemoveNodeRequest{Id: "node2"}))
	wantCode(t, err, connect.CodeFailedPrecondition)
	_, err = e.cluster.TransferLeadership(e.ctx, connect.NewRequest(&logbookv1.TransferLeadershipRequest{}))
	wantCode(t, err, connect.CodeFailedPrecondition)
}
