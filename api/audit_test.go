package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func atTime(t time.Time) *logbookv1.AuditPoint {
	return &logbookv1.AuditPoint{At: &logbookv1.AuditPoint_Time{Time: timestamppb.New(t)}}
}

func atPosition(p uint64) *logbookv1.AuditPoint {
	return &logbookv1.AuditPoint{At: &logbookv1.AuditPoint_Position{Position: p}}
}

// labelsOf decodes the labels of a unit state's JSON.
func labelsOf(t *testing.T, st *logbookv1.StateAtResponse) map[string]string {
	t.Helper()
	var v struct {
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(st.StateJson), &v); err != nil {
		t.Fatalf("state JSON %s: %v", st.StateJson, err)
	}
	return v.Labels
}

func TestStateAtAndDiff(t *testing.T) {
	e := newEnv(t)
	c := e.history()
	registeredAt := e.clock.Now()
	e.registerUnit("ship1", map[string]string{"site": "north", "env": "prod"}, "")
	e.clock.Advance(time.Minute)
	before := e.clock.Now() // after the registration, before the relabelling
	e.clock.Advance(time.Minute)
	relabelledAt := e.clock.Now()
	try(e.units.SetUnitLabels(e.ctx, connect.NewRequest(&logbookv1.SetUnitLabelsRequest{
		Unit: "ship1", Set: map[string]string{"site": "south", "rack": "7"}, Remove: []string{"env"},
	}))).must(t)
	evs := e.readStream("unit-ship1")
	if len(evs) < 2 || !evs[0].Time.Equal(registeredAt) || !evs[len(evs)-1].Time.Equal(relabelledAt) {
		t.Fatalf("unit-ship1 holds %d events; want a registration and relabelling at the test clock's times", len(evs))
	}
	registration := evs[0]

	stateAt := func(at *logbookv1.AuditPoint) *logbookv1.StateAtResponse {
		t.Helper()
		return try(c.audit.StateAt(e.ctx, connect.NewRequest(&logbookv1.StateAtRequest{Stream: "unit-ship1", At: at}))).must(t).Msg
	}
	for name, st := range map[string]*logbookv1.StateAtResponse{
		"time":     stateAt(atTime(before)),
		"position": stateAt(atPosition(registration.Position)),
	} {
		if got := labelsOf(t, st); len(got) != 2 || got["site"] != "north" || got["env"] != "prod" {
			t.Errorf("at a %s before the relabelling: labels %v, want the registered ones", name, got)
		}
		if st.Version != 1 || st.Position != registration.Position || !st.Time.AsTime().Equal(registeredAt) ||
			st.StateType != "logbook.v1.UnitState" || st.Stream != "unit-ship1" {
			t.Errorf("at a %s before the relabelling: %v", name, st)
		}
	}
	now := stateAt(nil)
	if got := labelsOf(t, now); len(got) != 2 || got["site"] != "south" || got["rack"] != "7" {
		t.Errorf("now: labels %v", got)
	}
	if now.Version != uint64(len(evs)) || now.Position != evs[len(evs)-1].Position {
		t.Errorf("now: version %d position %d, want %d and %d", now.Version, now.Position, len(evs), evs[len(evs)-1].Position)
	}

	// Diff: the label changes and the events between.
	d := try(c.audit.Diff(e.ctx, connect.NewRequest(&logbookv1.DiffRequest{Stream: "unit-ship1", From: atTime(before)}))).must(t).Msg
	changes := map[string][2]string{}
	for _, ch := range d.Changes {
		changes[ch.Path] = [2]string{ch.Before, ch.After}
	}
	for path, want := range map[string][2]string{
		"labels.site": {`"north"`, `"south"`},
		"labels.env":  {`"prod"`, ""},
		"labels.rack": {"", `"7"`},
	} {
		if got := changes[path]; got != want {
			t.Errorf("change of %s = %q, want %q (all: %v)", path, got, want, changes)
		}
	}
	if _, ok := changes["name"]; ok {
		t.Errorf("unchanged field listed: %v", changes)
	}
	if d.From.Version != 1 || d.To.Version != uint64(len(evs)) || len(d.Events) != len(evs)-1 {
		t.Fatalf("Diff: from v%d to v%d with %d events", d.From.Version, d.To.Version, len(d.Events))
	}
	for i, rec := range d.Events {
		if ev := evs[i+1]; rec.Position != ev.Position || rec.Type != ev.Type || rec.Principal == "" || rec.EventId != ev.ID.String() {
			t.Errorf("Diff event %d = %v, want %s at %d", i, rec, ev.Type, ev.Position)
		}
	}

	// From before the first event: the initial state, so everything the
	// unit became shows.
	d = try(c.audit.Diff(e.ctx, connect.NewRequest(&logbookv1.DiffRequest{
		Stream: "unit-ship1", From: atTime(registeredAt.Add(-time.Hour)), To: atPosition(registration.Position),
	}))).must(t).Msg
	paths := make([]string, len(d.Changes))
	for i, ch := range d.Changes {
		paths[i] = ch.Path
	}
	wantContains(t, strings.Join(paths, " "), "status", "registered_at", "platform", "labels.env", "labels.site")
	if d.From.Version != 0 || len(d.Events) != 1 {
		t.Errorf("Diff from the beginning: from v%d, %d events", d.From.Version, len(d.Events))
	}

	// Points that say what to fix.
	for _, tc := range []struct {
		name string
		req  *logbookv1.StateAtRequest
		code connect.Code
		msg  []string
	}{
		{"before the first event", &logbookv1.StateAtRequest{Stream: "unit-ship1", At: atTime(registeredAt.Add(-time.Hour))},
			connect.CodeNotFound, []string{"no events at or before", "first event is at position"}},
		{"unknown category", &logbookv1.StateAtRequest{Stream: "gauge-x"},
			connect.CodeInvalidArgument, []string{`category "gauge"`, "known categories: channel, process, release, unit"}},
		{"no such entity", &logbookv1.StateAtRequest{Stream: "unit-ghost"}, connect.CodeNotFound, []string{"unit-ghost has no events"}},
		{"no stream", &logbookv1.StateAtRequest{}, connect.CodeInvalidArgument, []string{"stream: required"}},
		{"bad time", &logbookv1.StateAtRequest{Stream: "unit-ship1", At: &logbookv1.AuditPoint{
			At: &logbookv1.AuditPoint_Time{Time: &timestamppb.Timestamp{Nanos: -1}}}}, connect.CodeInvalidArgument, []string{"at.time"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.audit.StateAt(e.ctx, connect.NewRequest(tc.req))
			wantContains(t, wantCode(t, err, tc.code), tc.msg...)
		})
	}
	_, err := c.audit.Diff(e.ctx, connect.NewRequest(&logbookv1.DiffRequest{Stream: "unit-ship1", From: atPosition(evs[1].Position), To: atPosition(1)}))
	wantContains(t, wantCode(t, err, connect.CodeInvalidArgument), "is after to")
	_, err = c.audit.Diff(e.ctx, connect.NewRequest(&logbookv1.DiffRequest{Stream: "unit-ship1"}))
	wantContains(t, wantCode(t, err, connect.CodeInvalidArgument), "from: required")

	// JSON over HTTP, as curl would.
	resp, body := e.httpJSON("/logbook.v1.AuditService/StateAt", e.admin,
		`{"stream":"unit-ship1","at":{"time":"`+before.Format(time.RFC3339Nano)+`"}}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `north`) {
		t.Fatalf("StateAt over HTTP: %d %s", resp.StatusCode, body)
	}
}

func TestAuditTimeline(t *testing.T) {
	e := newEnv(t)
	c := e.history()
	e.registerUnit("ship1", nil, "")
	e.registerUnit("ship2", nil, "")
	try(e.units.SetUnitLabels(e.ctx, connect.NewRequest(&logbookv1.SetUnitLabelsRequest{Unit: "ship1", Set: map[string]string{"a": "b"}}))).must(t)
	head, err := e.store.Head(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if st, _ := e.runner.Status(readmodel.AuditName); st.Ready && st.Checkpoint >= head.Position {
			break
		}
		select {
		case <-e.ctx.Done():
			t.Fatal("the audit read model did not catch up")
		case <-time.After(5 * time.Millisecond):
		}
	}
	want := e.readStream("unit-ship1")
	var got []*logbookv1.AuditRecord
	var after uint64
	for range 10 {
		page := try(c.audit.Timeline(e.ctx, connect.NewRequest(&logbookv1.AuditTimelineRequest{Stream: "unit-ship1", Limit: 1, After: after}))).must(t).Msg
		got = append(got, page.Entries...)
		if page.Next == 0 {
			break
		}
		after = page.Next
	}
	if len(got) != len(want) {
		t.Fatalf("timeline of unit-ship1 has %d entries, want %d", len(got), len(want))
	}
	for i, rec := range got {
		if rec.Position != want[i].Position || rec.Type != want[i].Type || rec.Stream != "unit-ship1" || rec.Version != uint64(i+1) {
			t.Errorf("entry %d = %v, want %s at %d", i, rec, want[i].Type, want[i].Position)
		}
	}
	_, err = c.audit.Timeline(e.ctx, connect.NewRequest(&logbookv1.AuditTimelineRequest{
		Since: timestamppb.New(time.Now()), Until: timestamppb.New(time.Now().Add(-time.Hour)),
	}))
	wantCode(t, err, connect.CodeInvalidArgument)
}
