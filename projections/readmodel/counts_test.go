package readmodel_test

import (
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func TestCounts(t *testing.T) {
	onEachSink(t, func(t *testing.T, e *env) {
		for _, name := range []string{"ship1", "ship2", "ship3"} {
			e.append("unit-"+name, &logbookv1.UnitRegistered{Name: name, At: ts(t0), By: "alice"}, md("alice"))
		}
		e.append("unit-ship1", &logbookv1.UnitConnected{At: ts(t0.Add(time.Minute))}, md("agent"))
		e.append("unit-ship2", &logbookv1.UnitConnected{At: ts(t0.Add(time.Minute))}, md("agent"))
		e.append("unit-ship2", &logbookv1.UnitDisconnected{At: ts(t0.Add(2 * time.Minute))}, md("agent"))
		e.append("unit-ship3", &logbookv1.UnitConnected{At: ts(t0.Add(time.Minute))}, md("agent"))
		e.append("unit-ship3", &logbookv1.UnitDecommissioned{Reason: "sold", At: ts(t0.Add(time.Hour)), By: "dave"}, md("dave"))
		for _, id := range []string{"c1", "c2", "c3"} {
			e.append("unit-ship1", &logbookv1.UnitCommandIssued{CommandId: id, Method: "shellcommand", Domain: "echo", IssuedAt: ts(t0)}, md("bob"))
		}
		e.append("unit-ship1", &logbookv1.UnitCommandSucceeded{CommandId: "c1", At: ts(t0.Add(time.Second))}, md("agent"))
		e.append("unit-ship1", &logbookv1.UnitCommandFailed{CommandId: "c2", ExitCode: 1, At: ts(t0.Add(time.Second))}, md("agent"))
		e.run(readmodel.Fleet(), readmodel.Commands())

		fc := must[readmodel.FleetCounts](t)(readmodel.CountUnits(e.ctx, e.sink))
		if fc != (readmodel.FleetCounts{Units: 2, Connected: 1}) {
			t.Errorf("CountUnits = %+v, want 2 units, 1 connected (ship3 is decommissioned)", fc)
		}
		cc := must[map[string]int](t)(readmodel.CountCommands(e.ctx, e.sink))
		want := map[string]int{readmodel.CommandIssued: 1, readmodel.CommandSucceeded: 1, readmodel.CommandFailed: 1}
		if len(cc) != len(want) {
			t.Fatalf("CountCommands = %v, want %v", cc, want)
		}
		for k, v := range want {
			if cc[k] != v {
				t.Errorf("CountCommands[%s] = %d, want %d (all: %v)", k, cc[k], v, cc)
			}
		}
	})
}
