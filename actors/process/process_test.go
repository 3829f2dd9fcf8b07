package process_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/kindtest"
	"github.com/logbook-fleet/logbook/actors/process"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// The given/when/then helper: given(events...).when(cmd).then(events...) or
// .thenErr(sentinel).

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

const (
	principal = "alice"
	id        = "ship1.syslogforwarding.nginx"
)

func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }

type scenario struct {
	id      string
	given   []proto.Message
	cmd     proto.Message
	want    []proto.Message
	wantErr error
}

func given(evs ...proto.Message) scenario { return scenario{id: id, given: evs} }

func (s scenario) when(cmd proto.Message) scenario { s.cmd = cmd; return s }

// then expects exactly evs (none when called without arguments).
func (s scenario) then(evs ...proto.Message) scenario { s.want = evs; return s }

// thenErr expects an error wrapping target, and no events.
func (s scenario) thenErr(target error) scenario { s.wantErr = target; return s }

// of makes the scenario about another entity id.
func (s scenario) of(id string) scenario { s.id = id; return s }

type spec struct {
	name string
	s    scenario
}

func runSpecs(t *testing.T, specs []spec) {
	t.Helper()
	for _, sp := range specs {
		t.Run(sp.name, func(t *testing.T) { sp.s.run(t) })
	}
}

func (s scenario) run(t *testing.T) {
	t.Helper()
	c := kindtest.Case{ID: s.id, Env: actors.Env{Now: t0, Principal: principal}, Given: s.given, When: s.cmd, Then: s.want}
	if s.wantErr != nil {
		c.Errs = []error{s.wantErr}
	}
	if err := kindtest.Check(t, process.Kind, c); err != nil && !strings.HasPrefix(err.Error(), "process ") {
		t.Errorf("error %q does not name the process", err)
	}
}

func show(m proto.Message) string { return kindtest.Text(m) }

const (
	running   = logbookv1.ProcessDesiredStatus_PROCESS_DESIRED_STATUS_RUNNING
	stopped   = logbookv1.ProcessDesiredStatus_PROCESS_DESIRED_STATUS_STOPPED
	always    = logbookv1.ProcessRestartPolicy_PROCESS_RESTART_POLICY_ALWAYS
	onFailure = logbookv1.ProcessRestartPolicy_PROCESS_RESTART_POLICY_ON_FAILURE
)

var (
	wantRunning  = &logbookv1.ProcessDesiredStatusSet{Status: running, At: ts(-time.Hour), By: principal}
	policyAlways = &logbookv1.ProcessRestartPolicySet{Policy: always, At: ts(-time.Hour), By: principal}
	configured   = &logbookv1.ProcessConfigured{Config: map[string]string{"level": "info"}, Revision: 1, At: ts(-time.Hour), By: principal}
	isRunning    = &logbookv1.ProcessStatusReported{Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING, RestartCount: 1, At: ts(-time.Minute)}
)

func TestDesiredStatus(t *testing.T) {
	runSpecs(t, []spec{
		{"first", given().when(&logbookv1.SetProcessDesiredStatus{Status: running}).
			then(&logbookv1.ProcessDesiredStatusSet{Status: running, At: ts(0), By: principal})},
		{"change", given(wantRunning).when(&logbookv1.SetProcessDesiredStatus{Status: stopped}).
			then(&logbookv1.ProcessDesiredStatusSet{Status: stopped, Previous: running, At: ts(0), By: principal})},
		{"same is a no-op", given(wantRunning).when(&logbookv1.SetProcessDesiredStatus{Status: running}).then()},
		{"unspecified", given().when(&logbookv1.SetProcessDesiredStatus{}).thenErr(process.ErrInvalidStatus)},
		{"unknown value", given().when(&logbookv1.SetProcessDesiredStatus{Status: 42}).thenErr(process.ErrInvalidStatus)},
	})
}

func TestRestartPolicy(t *testing.T) {
	runSpecs(t, []spec{
		{"first", given().when(&logbookv1.SetProcessRestartPolicy{Policy: always}).
			then(&logbookv1.ProcessRestartPolicySet{Policy: always, At: ts(0), By: principal})},
		{"change", given(policyAlways).when(&logbookv1.SetProcessRestartPolicy{Policy: onFailure}).
			then(&logbookv1.ProcessRestartPolicySet{Policy: onFailure, Previous: always, At: ts(0), By: principal})},
		{"same is a no-op", given(policyAlways).when(&logbookv1.SetProcessRestartPolicy{Policy: always}).then()},
		{"unspecified", given().when(&logbookv1.SetProcessRestartPolicy{}).thenErr(process.ErrInvalidRestartPolicy)},
		{"unknown value", given().when(&logbookv1.SetProcessRestartPolicy{Policy: 9}).thenErr(process.ErrInvalidRestartPolicy)},
	})
}

func TestConfigure(t *testing.T) {
	big := map[string]string{"k": strings.Repeat("v", process.MaxConfigBytes)}
	many := map[string]string{}
	for i := range process.MaxConfigKeys + 1 {
		many[strings.Repeat("k", 1+i%100)+string(rune('a'+i/100))] = ""
	}
	runSpecs(t, []spec{
		{"first", given().when(&logbookv1.ConfigureProcess{Config: map[string]string{"level": "info", "nginx.conf": "a\nb"}}).
			then(&logbookv1.ProcessConfigured{Config: map[string]string{"level": "info", "nginx.conf": "a\nb"}, Revision: 1, At: ts(0), By: principal})},
		{"replace", given(configured).when(&logbookv1.ConfigureProcess{Config: map[string]string{"level": "debug"}}).
			then(&logbookv1.ProcessConfigured{Config: map[string]string{"level": "debug"}, Revision: 2, At: ts(0), By: principal})},
		{"clear", given(configured).when(&logbookv1.ConfigureProcess{}).
			then(&logbookv1.ProcessConfigured{Revision: 2, At: ts(0), By: principal})},
		{"same is a no-op", given(configured).when(&logbookv1.ConfigureProcess{Config: map[string]string{"level": "info"}}).then()},
		{"empty when empty is a no-op", given().when(&logbookv1.ConfigureProcess{}).then()},
		{"empty key", given().when(&logbookv1.ConfigureProcess{Config: map[string]string{"": "x"}}).thenErr(process.ErrInvalidConfig)},
		{"key with space", given().when(&logbookv1.ConfigureProcess{Config: map[string]string{"a b": "x"}}).thenErr(process.ErrInvalidConfig)},
		{"value not UTF-8", given().when(&logbookv1.ConfigureProcess{Config: map[string]string{"a": "\xff"}}).thenErr(process.ErrInvalidConfig)},
		{"too large", given().when(&logbookv1.ConfigureProcess{Config: big}).thenErr(process.ErrInvalidConfig)},
		{"too many keys", given().when(&logbookv1.ConfigureProcess{Config: many}).thenErr(process.ErrInvalidConfig)},
	})
}

func TestReport(t *testing.T) {
	runSpecs(t, []spec{
		{"first", given(wantRunning).
			when(&logbookv1.ReportProcessStatus{Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING}).
			then(&logbookv1.ProcessStatusReported{Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING, At: ts(0)})},
		{"restart counted", given(isRunning).
			when(&logbookv1.ReportProcessStatus{Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING, RestartCount: 2}).
			then(&logbookv1.ProcessStatusReported{Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING, RestartCount: 2, At: ts(0)})},
		{"agent restarted, its counter starts again", given(isRunning).
			when(&logbookv1.ReportProcessStatus{Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING}).
			then(&logbookv1.ProcessStatusReported{Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING, At: ts(0)})},
		{"failed with exit code and detail", given(isRunning).
			when(&logbookv1.ReportProcessStatus{Status: logbookv1.ProcessStatus_PROCESS_STATUS_FAILED, RestartCount: 1, ExitCode: 137, Detail: "killed\xff"}).
			then(&logbookv1.ProcessStatusReported{Status: logbookv1.ProcessStatus_PROCESS_STATUS_FAILED, RestartCount: 1, ExitCode: 137, Detail: "killed\uFFFD", At: ts(0)})},
		{"long detail is cut", given().
			when(&logbookv1.ReportProcessStatus{Status: logbookv1.ProcessStatus_PROCESS_STATUS_STOPPED, Detail: strings.Repeat("x", process.MaxDetailBytes+1)}).
			then(&logbookv1.ProcessStatusReported{Status: logbookv1.ProcessStatus_PROCESS_STATUS_STOPPED, Detail: strings.Repeat("x", process.MaxDetailBytes), At: ts(0)})},
		{"same report is a no-op", given(isRunning).
			when(&logbookv1.ReportProcessStatus{Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING, RestartCount: 1}).then()},
		{"unspecified", given().when(&logbookv1.ReportProcessStatus{}).thenErr(process.ErrInvalidStatus)},
		{"unknown value", given().when(&logbookv1.ReportProcessStatus{Status: 99}).thenErr(process.ErrInvalidStatus)},
	})
}

func TestInvalidIDRefusesEverything(t *testing.T) {
	cmds := []proto.Message{
		&logbookv1.SetProcessDesiredStatus{Status: running},
		&logbookv1.SetProcessRestartPolicy{Policy: always},
		&logbookv1.ConfigureProcess{},
		&logbookv1.ReportProcessStatus{Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING},
	}
	for _, bad := range []string{"", "ship1", "ship1.nginx", "ship1.a.b.c", "ship 1.a.b", "ship1..b", "ship1.*.b"} {
		for _, cmd := range cmds {
			t.Run(bad+" "+string(cmd.ProtoReflect().Descriptor().Name()), func(t *testing.T) {
				given().of(bad).when(cmd).thenErr(process.ErrInvalidID).run(t)
			})
		}
	}
}

func TestUnsupported(t *testing.T) {
	runSpecs(t, []spec{
		{"an event", given().when(&logbookv1.ProcessConfigured{}).thenErr(process.ErrUnsupported)},
		{"a unit command", given().when(&logbookv1.RegisterUnit{}).thenErr(process.ErrUnsupported)},
	})
}

func TestEvolveFoldsHistory(t *testing.T) {
	s := process.New(id)
	for _, e := range []proto.Message{
		wantRunning, policyAlways, configured,
		&logbookv1.ProcessConfigured{Config: map[string]string{"level": "debug"}, Revision: 2, At: ts(-30 * time.Minute), By: "bob"},
		isRunning,
		&logbookv1.ProcessStatusReported{Status: logbookv1.ProcessStatus_PROCESS_STATUS_BACKOFF, RestartCount: 2, ExitCode: 1, Detail: "oom", At: ts(-time.Second)},
		&logbookv1.UnitRegistered{}, // events of other kinds change nothing
	} {
		s = process.Evolve(s, e)
	}
	want := &logbookv1.ProcessState{
		Id: id, Unit: "ship1", Method: "syslogforwarding", Domain: "nginx",
		DesiredStatus: running, RestartPolicy: always,
		Config: map[string]string{"level": "debug"}, ConfigRevision: 2,
		DesiredChangedAt: ts(-30 * time.Minute), DesiredChangedBy: "bob",
		ReportedStatus: logbookv1.ProcessStatus_PROCESS_STATUS_BACKOFF, RestartCount: 2, ExitCode: 1, Detail: "oom",
		ReportedAt: ts(-time.Second),
	}
	if !proto.Equal(s, want) {
		t.Fatalf("state:\n got: %s\nwant: %s", show(s), show(want))
	}
}

func TestKind(t *testing.T) {
	k := process.Kind
	if k.Category != "process" || len(k.Events) != 4 {
		t.Fatalf("Kind: %q, %d events", k.Category, len(k.Events))
	}
	st := k.New(id)
	evs, err := k.Decide(st, &logbookv1.SetProcessDesiredStatus{Status: running}, actors.Env{Now: t0})
	if err != nil || len(evs) != 1 {
		t.Fatalf("Decide via Kind: %v, %v", evs, err)
	}
	if got := k.Evolve(st, evs[0]).(*logbookv1.ProcessState).GetDesiredStatus(); got != running {
		t.Errorf("Evolve via Kind: desired %v", got)
	}
}

func TestErrorNamesTheProcess(t *testing.T) {
	_, err := process.Decide(process.New(id), &logbookv1.SetProcessDesiredStatus{}, actors.Env{Now: t0})
	if err == nil || !strings.HasPrefix(err.Error(), "process ship1.syslogforwarding.nginx: invalid process status") {
		t.Errorf("error = %v", err)
	}
}
