package readmodel_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func names(us []readmodel.Unit) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.Name
	}
	return out
}

func TestFleet(t *testing.T) {
	onEachSink(t, func(t *testing.T, e *env) {
		reg := func(name, platform string, labels map[string]string) {
			e.append("unit-"+name, &logbookv1.UnitRegistered{Name: name, Platform: platform, Labels: labels, At: ts(t0), By: "alice"}, md("alice"))
		}
		reg("ship1", "linux/arm64", map[string]string{"site": "north", "tier": "edge"})
		reg("ship2", "linux/amd64", map[string]string{"site": "south", "tier": "edge"})
		reg("ship3", "linux/arm64", map[string]string{"site": "north"})
		reg("ship4", "linux/arm64", nil)
		e.append("unit-ship1", &logbookv1.UnitChannelAssigned{Channel: "stable", ChannelRelease: "1.0.0"}, md("bob"))
		e.append("unit-ship1", &logbookv1.UnitDesiredReleaseChanged{Release: "1.0.0"}, md("bob"))
		e.append("unit-ship1", &logbookv1.UnitConnected{SessionId: "s1", AgentVersion: "0.9", At: ts(t0.Add(time.Minute))}, md("agent"))
		e.append("unit-ship1", &logbookv1.UnitReleaseReported{Release: "1.0.0", At: ts(t0.Add(2 * time.Minute))}, md("agent"))
		e.append("unit-ship1", &logbookv1.UnitHeartbeatReceived{At: ts(t0.Add(90 * time.Second))}, md("agent")) // older: last seen stays
		e.append("unit-ship2", &logbookv1.UnitChannelAssigned{Channel: "beta"}, md("bob"))
		e.append("unit-ship2", &logbookv1.UnitReleasePinned{Release: "0.9.0", By: "carol"}, md("carol"))
		e.append("unit-ship2", &logbookv1.UnitConnected{At: ts(t0.Add(time.Minute))}, md("agent"))
		e.append("unit-ship2", &logbookv1.UnitDisconnected{At: ts(t0.Add(3 * time.Minute))}, md("agent"))
		e.append("unit-ship3", &logbookv1.UnitLabelsSet{Labels: map[string]string{"tier": "core", "site": "east"}}, md("bob"))
		e.append("unit-ship3", &logbookv1.UnitLabelsRemoved{Keys: []string{"site"}}, md("bob"))
		e.append("unit-ship4", &logbookv1.UnitConnected{At: ts(t0)}, md("agent"))
		e.append("unit-ship4", &logbookv1.UnitDecommissioned{Reason: "sunk", At: ts(t0.Add(time.Hour)), By: "dave"}, md("dave"))
		// Events the fleet does not track leave it alone.
		e.append("unit-ship1", &logbookv1.UnitCommandIssued{CommandId: "c1", Method: "shell"}, md("bob"))
		e.run(readmodel.Fleet())

		u := must[readmodel.Unit](t)(readmodel.GetUnit(e.ctx, e.sink, "ship1"))
		want := readmodel.Unit{
			Name: "ship1", Platform: "linux/arm64", Labels: map[string]string{"site": "north", "tier": "edge"},
			Channel: "stable", ChannelRelease: "1.0.0", DesiredRelease: "1.0.0", ReportedRelease: "1.0.0",
			Connected: true, AgentVersion: "0.9", LastSeen: t0.Add(2 * time.Minute), RegisteredAt: t0, RegisteredBy: "alice",
		}
		u.Position = 0
		if !equalUnit(u, want) {
			t.Errorf("ship1 = %+v\nwant %+v", u, want)
		}
		u2 := must[readmodel.Unit](t)(readmodel.GetUnit(e.ctx, e.sink, "ship2"))
		if u2.PinnedRelease != "0.9.0" || u2.Connected || !u2.LastSeen.Equal(t0.Add(3*time.Minute)) || u2.Channel != "beta" {
			t.Errorf("ship2 = %+v", u2)
		}
		u3 := must[readmodel.Unit](t)(readmodel.GetUnit(e.ctx, e.sink, "ship3"))
		if !maps.Equal(u3.Labels, map[string]string{"tier": "core"}) {
			t.Errorf("ship3 labels = %v", u3.Labels)
		}
		u4 := must[readmodel.Unit](t)(readmodel.GetUnit(e.ctx, e.sink, "ship4"))
		if !u4.Decommissioned || u4.Connected || !u4.DecommissionedAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("ship4 = %+v", u4)
		}
		if _, err := readmodel.GetUnit(e.ctx, e.sink, "nope"); !errors.Is(err, readmodel.ErrNotFound) {
			t.Errorf("GetUnit(nope) = %v, want ErrNotFound", err)
		}

		yes, no := true, false
		for _, tc := range []struct {
			name string
			q    readmodel.UnitQuery
			want []string
		}{
			{"all active", readmodel.UnitQuery{}, []string{"ship1", "ship2", "ship3"}},
			{"with decommissioned", readmodel.UnitQuery{IncludeDecommissioned: true}, []string{"ship1", "ship2", "ship3", "ship4"}},
			{"label", readmodel.UnitQuery{Selector: "site=north"}, []string{"ship1"}},
			{"two labels", readmodel.UnitQuery{Selector: "tier=edge, site=south"}, []string{"ship2"}},
			{"not equals", readmodel.UnitQuery{Selector: "tier!=edge"}, []string{"ship3"}},
			{"exists", readmodel.UnitQuery{Selector: "site"}, []string{"ship1", "ship2"}},
			{"not exists", readmodel.UnitQuery{Selector: "!site", IncludeDecommissioned: true}, []string{"ship3", "ship4"}},
			{"channel", readmodel.UnitQuery{Channel: "beta"}, []string{"ship2"}},
			{"connected", readmodel.UnitQuery{Connected: &yes}, []string{"ship1"}},
			{"disconnected", readmodel.UnitQuery{Connected: &no}, []string{"ship2", "ship3"}},
			{"page 1", readmodel.UnitQuery{Limit: 2}, []string{"ship1", "ship2"}},
			{"page 2", readmodel.UnitQuery{Limit: 2, After: "ship2"}, []string{"ship3"}},
			{"no match", readmodel.UnitQuery{Selector: "site=west"}, []string{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := must[[]readmodel.Unit](t)(readmodel.ListUnits(e.ctx, e.sink, tc.q))
				if g := names(got); !slices.Equal(g, tc.want) {
					t.Errorf("ListUnits(%+v) = %v, want %v", tc.q, g, tc.want)
				}
			})
		}
		if _, err := readmodel.ListUnits(e.ctx, e.sink, readmodel.UnitQuery{Selector: "a=b=c"}); !errors.Is(err, readmodel.ErrInvalidQuery) {
			t.Errorf("bad selector: %v, want ErrInvalidQuery", err)
		}
	})
}

func equalUnit(a, b readmodel.Unit) bool {
	return a.Name == b.Name && a.Platform == b.Platform && maps.Equal(a.Labels, b.Labels) && a.Channel == b.Channel &&
		a.ChannelRelease == b.ChannelRelease && a.PinnedRelease == b.PinnedRelease && a.DesiredRelease == b.DesiredRelease &&
		a.ReportedRelease == b.ReportedRelease && a.Connected == b.Connected && a.AgentVersion == b.AgentVersion &&
		a.LastSeen.Equal(b.LastSeen) && a.RegisteredAt.Equal(b.RegisteredAt) && a.RegisteredBy == b.RegisteredBy &&
		a.Decommissioned == b.Decommissioned && a.DecommissionedAt.Equal(b.DecommissionedAt)
}

// TestFleetLive checks events appended after the first catch-up, one
// batch at a time, fold the same way.
func TestFleetLive(t *testing.T) {
	onEachSink(t, func(t *testing.T, e *env) {
		e.append("unit-a", &logbookv1.UnitRegistered{Name: "a", Labels: map[string]string{"k": "1"}}, md("x"))
		r := e.run(readmodel.Fleet())
		e.append("unit-a", &logbookv1.UnitLabelsSet{Labels: map[string]string{"k": "2"}}, md("x"))
		e.append("unit-b", &logbookv1.UnitRegistered{Name: "b", Labels: map[string]string{"k": "2"}}, md("x"))
		e.caughtUp(r, readmodel.FleetName)
		got := must[[]readmodel.Unit](t)(readmodel.ListUnits(e.ctx, e.sink, readmodel.UnitQuery{Selector: "k=2"}))
		if g := names(got); !slices.Equal(g, []string{"a", "b"}) {
			t.Errorf("k=2: %v", g)
		}
		if got := must[[]readmodel.Unit](t)(readmodel.ListUnits(e.ctx, e.sink, readmodel.UnitQuery{Selector: "k=1"})); len(got) != 0 {
			t.Errorf("k=1: %v, want none (relabelled)", names(got))
		}
	})
}

func TestNotReady(t *testing.T) {
	onEachSink(t, func(t *testing.T, e *env) {
		// Nothing ever ran: the sink has no version.
		if _, err := readmodel.ListUnits(e.ctx, e.sink, readmodel.UnitQuery{}); !errors.Is(err, projections.ErrNotReady) {
			t.Errorf("ListUnits before any run = %v, want ErrNotReady", err)
		}
		e.append("unit-a", &logbookv1.UnitRegistered{Name: "a"}, md("x"))
		p := readmodel.Fleet()
		release := make(chan struct{})
		h := p.Handler
		p.Handler = projections.HandlerFunc(func(ctx context.Context, tx projections.Tx, b []events.Event) error {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			return h.Handle(ctx, tx, b)
		})
		r, err := projections.Start(e.ctx, e.store, e.sink, []projections.Projection{p}, projections.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		guarded := readmodel.Guard(r, e.sink)
		if _, err := readmodel.GetUnit(e.ctx, guarded, "a"); !errors.Is(err, projections.ErrNotReady) {
			t.Errorf("guarded GetUnit while catching up = %v, want ErrNotReady", err)
		}
		close(release)
		if err := r.WaitReady(e.ctx, readmodel.FleetName); err != nil {
			t.Fatal(err)
		}
		if _, err := readmodel.GetUnit(e.ctx, guarded, "a"); err != nil {
			t.Errorf("guarded GetUnit once ready: %v", err)
		}
	})
}
