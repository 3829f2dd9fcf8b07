package readmodel_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func TestProcesses(t *testing.T) {
	onEachSink(t, func(t *testing.T, e *env) {
		s := "process-ship1.syslog.nginx"
		e.append(s, &logbookv1.ProcessDesiredStatusSet{Status: logbookv1.ProcessDesiredStatus_PROCESS_DESIRED_STATUS_RUNNING, At: ts(t0), By: "alice"}, md("alice"))
		e.append(s, &logbookv1.ProcessRestartPolicySet{Policy: logbookv1.ProcessRestartPolicy_PROCESS_RESTART_POLICY_ON_FAILURE}, md("alice"))
		e.append(s, &logbookv1.ProcessConfigured{Config: map[string]string{"port": "514"}, Revision: 3}, md("alice"))
		e.append(s, &logbookv1.ProcessStatusReported{Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING, RestartCount: 2, At: ts(t0.Add(time.Minute))}, md("agent"))
		e.append("process-ship1.metrics.node", &logbookv1.ProcessStatusReported{Status: logbookv1.ProcessStatus_PROCESS_STATUS_FAILED, ExitCode: 3, Detail: "boom"}, md("agent"))
		e.append("process-ship2.syslog.nginx", &logbookv1.ProcessDesiredStatusSet{Status: logbookv1.ProcessDesiredStatus_PROCESS_DESIRED_STATUS_STOPPED}, md("bob"))
		e.run(readmodel.Processes())

		got := must[[]readmodel.Process](t)(readmodel.ProcessesOfUnit(e.ctx, e.sink, "ship1"))
		if len(got) != 2 || got[0].Method != "metrics" || got[1].Method != "syslog" {
			t.Fatalf("ProcessesOfUnit(ship1) = %+v", got)
		}
		p := got[1]
		if p.Unit != "ship1" || p.Domain != "nginx" || p.DesiredStatus != "running" || p.RestartPolicy != "on_failure" ||
			p.ReportedStatus != "running" || p.RestartCount != 2 || p.ConfigRevision != 3 || !maps.Equal(p.Config, map[string]string{"port": "514"}) ||
			!p.DesiredChangedAt.Equal(t0) || p.DesiredChangedBy != "alice" || !p.ReportedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("syslog.nginx = %+v", p)
		}
		if m := got[0]; m.ReportedStatus != "failed" || m.ExitCode != 3 || m.Detail != "boom" || m.DesiredStatus != "" {
			t.Errorf("metrics.node = %+v", m)
		}
		p2 := must[readmodel.Process](t)(readmodel.GetProcess(e.ctx, e.sink, "ship2", "syslog", "nginx"))
		if p2.DesiredStatus != "stopped" {
			t.Errorf("ship2 = %+v", p2)
		}
		if _, err := readmodel.GetProcess(e.ctx, e.sink, "ship3", "a", "b"); !errors.Is(err, readmodel.ErrNotFound) {
			t.Errorf("GetProcess(missing) = %v", err)
		}
	})
}

func TestCommands(t *testing.T) {
	onEachSink(t, func(t *testing.T, e *env) {
		issue := func(unit, id string) uint64 {
			return e.append("unit-"+unit, &logbookv1.UnitCommandIssued{CommandId: id, Method: "shell", Domain: "sh", Args: []string{"uptime", id},
				IssuedAt: ts(t0), IssuedBy: "alice", Deadline: ts(t0.Add(time.Hour))}, md("alice"))
		}
		issue("ship1", "c1")
		issue("ship1", "c2")
		issue("ship1", "c3")
		issue("ship1", "c4")
		issue("ship1", "c5")
		issue("ship2", "c1")
		e.append("unit-ship1", &logbookv1.UnitCommandDelivered{CommandId: "c1", At: ts(t0.Add(time.Second))}, md("agent"))
		big := strings.Repeat("x", readmodel.MaxCommandOutput+10)
		e.append("unit-ship1", &logbookv1.UnitCommandSucceeded{CommandId: "c1", ExitCode: 0, Output: []byte(big), At: ts(t0.Add(2 * time.Second))}, md("agent"))
		e.append("unit-ship1", &logbookv1.UnitCommandFailed{CommandId: "c2", ExitCode: 2, Output: []byte("no\xffpe"), OutputTruncated: true, Error: "exit 2", At: ts(t0.Add(3 * time.Second))}, md("agent"))
		e.append("unit-ship1", &logbookv1.UnitCommandExpired{CommandId: "c3", At: ts(t0.Add(time.Hour))}, md("system"))
		e.append("unit-ship1", &logbookv1.UnitCommandCancelled{CommandId: "c4", Reason: "oops", At: ts(t0.Add(time.Minute))}, md("bob"))
		e.append("unit-ship1", &logbookv1.UnitCommandDelivered{CommandId: "c4", At: ts(t0.Add(2 * time.Minute))}, md("agent")) // late: stays cancelled
		e.run(readmodel.Commands())

		c1 := must[readmodel.Command](t)(readmodel.GetCommand(e.ctx, e.sink, "ship1", "c1"))
		if c1.Status != readmodel.CommandSucceeded || c1.Method != "shell" || !slices.Equal(c1.Args, []string{"uptime", "c1"}) ||
			c1.IssuedBy != "alice" || !c1.IssuedAt.Equal(t0) || !c1.DeliveredAt.Equal(t0.Add(time.Second)) ||
			!c1.FinishedAt.Equal(t0.Add(2*time.Second)) || !c1.Deadline.Equal(t0.Add(time.Hour)) ||
			len(c1.Output) != readmodel.MaxCommandOutput || c1.OutputSize != int64(len(big)) || !c1.OutputTruncated {
			t.Errorf("c1 = %+v", c1)
		}
		c2 := must[readmodel.Command](t)(readmodel.GetCommand(e.ctx, e.sink, "ship1", "c2"))
		if c2.Status != readmodel.CommandFailed || c2.ExitCode != 2 || c2.Error != "exit 2" || c2.Output != "no\uFFFDpe" || !c2.OutputTruncated {
			t.Errorf("c2 = %+v", c2)
		}
		c4 := must[readmodel.Command](t)(readmodel.GetCommand(e.ctx, e.sink, "ship1", "c4"))
		if c4.Status != readmodel.CommandCancelled || c4.Error != "oops" {
			t.Errorf("c4 = %+v", c4)
		}
		ids := func(cs []readmodel.Command) []string {
			var out []string
			for _, c := range cs {
				out = append(out, c.Unit+"/"+c.ID)
			}
			return out
		}
		page1 := must[[]readmodel.Command](t)(readmodel.ListCommands(e.ctx, e.sink, readmodel.CommandQuery{Unit: "ship1", Limit: 2}))
		if g := ids(page1); !slices.Equal(g, []string{"ship1/c5", "ship1/c4"}) {
			t.Errorf("page 1 = %v", g)
		}
		page2 := must[[]readmodel.Command](t)(readmodel.ListCommands(e.ctx, e.sink, readmodel.CommandQuery{Unit: "ship1", Limit: 2, Before: page1[1].IssuedPosition}))
		if g := ids(page2); !slices.Equal(g, []string{"ship1/c3", "ship1/c2"}) {
			t.Errorf("page 2 = %v", g)
		}
		issued := must[[]readmodel.Command](t)(readmodel.ListCommands(e.ctx, e.sink, readmodel.CommandQuery{Status: readmodel.CommandIssued}))
		if g := ids(issued); !slices.Equal(g, []string{"ship2/c1", "ship1/c5"}) {
			t.Errorf("issued = %v", g)
		}
		if _, err := readmodel.GetCommand(e.ctx, e.sink, "ship2", "c9"); !errors.Is(err, readmodel.ErrNotFound) {
			t.Errorf("GetCommand(missing) = %v", err)
		}
	})
}

func TestReleases(t *testing.T) {
	onEachSink(t, func(t *testing.T, e *env) {
		pub := func(v string, platforms ...string) {
			var arts []*logbookv1.ReleaseArtifact
			for _, p := range platforms {
				arts = append(arts, &logbookv1.ReleaseArtifact{Platform: p})
			}
			e.append("release-"+v, &logbookv1.ReleasePublished{Version: v, Artifacts: arts, PublishedAt: ts(t0), PublishedBy: "ci"}, md("ci"))
		}
		pub("1.0.0", "linux/arm64", "linux/amd64", "linux/arm64")
		pub("1.1.0", "linux/arm64")
		pub("1.2.0")
		e.append("release-1.1.0", &logbookv1.ReleaseYanked{Version: "1.1.0", Reason: "bad", YankedBy: "alice", YankedAt: ts(t0.Add(time.Hour))}, md("alice"))
		e.append("channel-stable", &logbookv1.ChannelCreated{Name: "stable", Description: "prod", CreatedBy: "alice", CreatedAt: ts(t0)}, md("alice"))
		e.append("channel-stable", &logbookv1.ChannelReleasePromoted{Channel: "stable", Version: "1.0.0", Reason: "first", PromotedBy: "bob", PromotedAt: ts(t0.Add(time.Minute))}, md("bob"))
		e.append("channel-stable", &logbookv1.ChannelReleasePromoted{Channel: "stable", Version: "1.1.0", PreviousVersion: "1.0.0", Reason: "next", PromotedBy: "bob"}, md("bob"))
		e.append("channel-stable", &logbookv1.ChannelRolledBack{Channel: "stable", FromVersion: "1.1.0", ToVersion: "1.0.0", Reason: "yanked"}, md("carol"))
		e.append("channel-stable", &logbookv1.ChannelFeatureFlagSet{Channel: "stable", Key: "a", Value: "1"}, md("bob"))
		e.append("channel-stable", &logbookv1.ChannelFeatureFlagSet{Channel: "stable", Key: "b", Value: "2"}, md("bob"))
		e.append("channel-stable", &logbookv1.ChannelFeatureFlagUnset{Channel: "stable", Key: "a"}, md("bob"))
		e.append("channel-beta", &logbookv1.ChannelCreated{Name: "beta"}, md("alice"))
		e.append("channel-beta", &logbookv1.ChannelReleasePromoted{Channel: "beta", Version: "1.2.0"}, md("dave"))
		e.run(readmodel.Releases())

		r := must[readmodel.Release](t)(readmodel.GetRelease(e.ctx, e.sink, "1.0.0"))
		if r.Artifacts != 3 || !slices.Equal(r.Platforms, []string{"linux/amd64", "linux/arm64"}) || r.PublishedBy != "ci" || !r.PublishedAt.Equal(t0) || r.Yanked {
			t.Errorf("1.0.0 = %+v", r)
		}
		y := must[readmodel.Release](t)(readmodel.GetRelease(e.ctx, e.sink, "1.1.0"))
		if !y.Yanked || y.YankReason != "bad" || y.YankedBy != "alice" || !y.YankedAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("1.1.0 = %+v", y)
		}
		vers := func(rs []readmodel.Release) []string {
			var out []string
			for _, r := range rs {
				out = append(out, r.Version)
			}
			return out
		}
		if g := vers(must[[]readmodel.Release](t)(readmodel.ListReleases(e.ctx, e.sink, readmodel.ReleaseQuery{}))); !slices.Equal(g, []string{"1.2.0", "1.0.0"}) {
			t.Errorf("releases = %v", g)
		}
		all := must[[]readmodel.Release](t)(readmodel.ListReleases(e.ctx, e.sink, readmodel.ReleaseQuery{IncludeYanked: true, Limit: 2}))
		more := must[[]readmodel.Release](t)(readmodel.ListReleases(e.ctx, e.sink, readmodel.ReleaseQuery{IncludeYanked: true, Before: all[1].PublishedPosition}))
		if g := vers(append(all, more...)); !slices.Equal(g, []string{"1.2.0", "1.1.0", "1.0.0"}) {
			t.Errorf("releases with yanked, paged = %v", g)
		}

		c := must[readmodel.Channel](t)(readmodel.GetChannel(e.ctx, e.sink, "stable"))
		if c.CurrentRelease != "1.0.0" || !maps.Equal(c.Flags, map[string]string{"b": "2"}) || c.Description != "prod" || c.CreatedBy != "alice" {
			t.Errorf("stable = %+v", c)
		}
		chans := must[[]readmodel.Channel](t)(readmodel.ListChannels(e.ctx, e.sink))
		if len(chans) != 2 || chans[0].Name != "beta" || chans[0].CurrentRelease != "1.2.0" {
			t.Errorf("channels = %+v", chans)
		}
		h := must[[]readmodel.Promotion](t)(readmodel.PromotionHistory(e.ctx, e.sink, readmodel.HistoryQuery{Channel: "stable"}))
		want := []readmodel.Promotion{
			{Channel: "stable", Kind: readmodel.PromotionRollback, Release: "1.0.0", Previous: "1.1.0", Reason: "yanked", By: "carol"},
			{Channel: "stable", Kind: readmodel.PromotionPromote, Release: "1.1.0", Previous: "1.0.0", Reason: "next", By: "bob"},
			{Channel: "stable", Kind: readmodel.PromotionPromote, Release: "1.0.0", Previous: "", Reason: "first", By: "bob", At: t0.Add(time.Minute)},
		}
		if len(h) != len(want) {
			t.Fatalf("history = %+v", h)
		}
		for i := range want {
			g := h[i]
			if g.Channel != want[i].Channel || g.Kind != want[i].Kind || g.Release != want[i].Release || g.Previous != want[i].Previous ||
				g.Reason != want[i].Reason || g.By != want[i].By || g.At.IsZero() || (!want[i].At.IsZero() && !g.At.Equal(want[i].At)) {
				t.Errorf("history[%d] = %+v, want %+v", i, g, want[i])
			}
		}
		if g := must[[]readmodel.Promotion](t)(readmodel.PromotionHistory(e.ctx, e.sink, readmodel.HistoryQuery{Release: "1.2.0"})); len(g) != 1 || g[0].Channel != "beta" || g[0].By != "dave" {
			t.Errorf("history of 1.2.0 = %+v", g)
		}
		if _, err := readmodel.GetChannel(e.ctx, e.sink, "nope"); !errors.Is(err, readmodel.ErrNotFound) {
			t.Errorf("GetChannel(nope) = %v", err)
		}
	})
}

func TestAudit(t *testing.T) {
	onEachSink(t, func(t *testing.T, e *env) {
		p1 := e.append("unit-a", &logbookv1.UnitRegistered{Name: "a"}, md("alice"))
		e.append("readings-a", &logbookv1.AgentReading{Sensor: "t", Value: 1}, md("agent"))
		p3 := e.append("unit-a", &logbookv1.UnitLabelsSet{Labels: map[string]string{"x": "y"}}, md("bob"))
		p4 := e.append("channel-c", &logbookv1.ChannelCreated{Name: "c"}, md("alice"))
		e.append("readings-b", &logbookv1.AgentReading{Sensor: "t", Value: 2}, md("agent"))
		r := e.run(readmodel.Audit())
		p6 := e.append("release-1", &logbookv1.ReleasePublished{Version: "1"}, md("alice"))
		e.caughtUp(r, readmodel.AuditName)

		pos := func(es []readmodel.AuditEntry) []uint64 {
			var out []uint64
			for _, e := range es {
				out = append(out, e.Position)
			}
			return out
		}
		all := must[[]readmodel.AuditEntry](t)(readmodel.AuditTimeline(e.ctx, e.sink, readmodel.AuditQuery{}))
		if g := pos(all); !slices.Equal(g, []uint64{p6, p4, p3, p1}) {
			t.Fatalf("timeline = %v, want %v (no readings)", g, []uint64{p6, p4, p3, p1})
		}
		if a := all[2]; a.Stream != "unit-a" || a.Category != "unit" || a.Type != "logbook.v1.UnitLabelsSet" || a.Principal != "bob" ||
			a.CorrelationID != "corr-bob" || a.CausationID != "cause-bob" || a.Version != 2 || a.Time.IsZero() || a.EventID == "" {
			t.Errorf("entry = %+v", a)
		}
		mid := all[2].Time
		for _, tc := range []struct {
			name string
			q    readmodel.AuditQuery
			want []uint64
		}{
			{"stream", readmodel.AuditQuery{Stream: "unit-a"}, []uint64{p3, p1}},
			{"stream after", readmodel.AuditQuery{Stream: "unit-a", After: p1}, []uint64{p3}},
			{"principal", readmodel.AuditQuery{Principal: "alice"}, []uint64{p6, p4, p1}},
			{"principal paged", readmodel.AuditQuery{Principal: "alice", Before: p4}, []uint64{p1}},
			{"category", readmodel.AuditQuery{Category: "channel"}, []uint64{p4}},
			{"correlation", readmodel.AuditQuery{CorrelationID: "corr-bob"}, []uint64{p3}},
			{"limit", readmodel.AuditQuery{Limit: 2}, []uint64{p6, p4}},
			{"oldest first", readmodel.AuditQuery{Oldest: true, Limit: 2}, []uint64{p1, p3}},
			{"oldest first paged", readmodel.AuditQuery{Oldest: true, After: p3, Limit: 2}, []uint64{p4, p6}},
			{"since", readmodel.AuditQuery{Since: all[0].Time}, []uint64{p6}},
			{"until", readmodel.AuditQuery{Until: all[3].Time.Add(time.Nanosecond), Stream: "unit-a"}, []uint64{p1}},
			{"time range", readmodel.AuditQuery{Since: mid, Until: mid.Add(time.Nanosecond)}, []uint64{p3}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := must[[]readmodel.AuditEntry](t)(readmodel.AuditTimeline(e.ctx, e.sink, tc.q))
				if g := pos(got); !slices.Equal(g, tc.want) {
					t.Errorf("AuditTimeline(%+v) = %v, want %v", tc.q, g, tc.want)
				}
			})
		}
		if _, err := readmodel.AuditTimeline(e.ctx, e.sink, readmodel.AuditQuery{Since: t0, Until: t0.Add(-1)}); !errors.Is(err, readmodel.ErrInvalidQuery) {
			t.Errorf("backwards range: %v", err)
		}
	})
}

// TestPoison checks an undecodable payload of a handled type stops the
// projection with ErrPoison.
func TestPoison(t *testing.T) {
	onEachSink(t, func(t *testing.T, e *env) {
		e.appendRaw("readings-a", "logbook.v1.AgentReading", []byte{0xff, 0xff, 0xff})
		r, err := projections.Start(e.ctx, e.store, e.sink, []projections.Projection{readmodel.Readings()},
			projections.WithLogger(quietLogger()), projections.WithBackoff(time.Millisecond, 5*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		err = r.WaitReady(e.ctx, readmodel.ReadingsName)
		if !errors.Is(err, projections.ErrStopped) || !errors.Is(err, projections.ErrPoison) {
			t.Fatalf("WaitReady = %v, want ErrStopped and ErrPoison", err)
		}
	})
}
