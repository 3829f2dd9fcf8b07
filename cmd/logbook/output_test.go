package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func newTestDisplay(format string) (*display, *bytes.Buffer) {
	var out bytes.Buffer
	return &display{format: format, out: &out, diag: &out, now: testNow}, &out
}

func TestAgo(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "just now"},
		{45 * time.Second, "45s ago"},
		{3 * time.Minute, "3m ago"},
		{3*time.Minute + 20*time.Second, "3m20s ago"},
		{42 * time.Minute, "42m ago"},
		{2 * time.Hour, "2h ago"},
		{2*time.Hour + 5*time.Minute, "2h5m ago"},
		{10*time.Hour + 5*time.Minute, "10h ago"},
		{4*24*time.Hour + 3*time.Hour, "4d3h ago"},
		{400 * 24 * time.Hour, "400d ago"},
		{-5 * time.Minute, "in 5m"},
	}
	for _, tt := range tests {
		if got := ago(timestamppb.New(testNow.Add(-tt.d)), testNow); got != tt.want {
			t.Errorf("ago(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
	if got := ago(nil, testNow); got != "" {
		t.Errorf("ago(nil) = %q", got)
	}
}

func TestEnumText(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{enumText(logbookv1.UnitStatus_UNIT_STATUS_ACTIVE), "active"},
		{enumText(logbookv1.UnitStatus_UNIT_STATUS_UNSPECIFIED), ""},
		{enumText(logbookv1.ProcessRestartPolicy_PROCESS_RESTART_POLICY_ON_FAILURE), "on-failure"},
		{enumText(logbookv1.UnitCommandStatus_UNIT_COMMAND_STATUS_SUCCEEDED), "succeeded"},
		{enumText(logbookv1.ChannelAction_CHANNEL_ACTION_ROLLBACK), "rollback"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestTable(t *testing.T) {
	p, out := newTestDisplay(formatTable)
	p.rows([]string{"NAME", "LABELS"}, [][]string{{"ship1", "site=north"}, {"ship22", ""}, {"bad", "a\tb"}})
	want := "NAME     LABELS\n" +
		"ship1    site=north\n" +
		"ship22   -\n" +
		"bad      a\\tb\n"
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestMessageFormats(t *testing.T) {
	res := &logbookv1.ListUnitsResponse{Units: []*logbookv1.UnitSummary{{
		Name: "ship1", Labels: map[string]string{"site": "north"}, Connected: true, Position: 17,
		LastSeen: timestamppb.New(testNow),
	}}}

	p, out := newTestDisplay(formatJSON)
	p.message(res)
	wantJSON := `{
  "units": [
    {
      "name": "ship1",
      "labels": {
        "site": "north"
      },
      "connected": true,
      "lastSeen": "2026-11-22T12:00:00Z",
      "position": "17"
    }
  ]
}
`
	if out.String() != wantJSON {
		t.Errorf("json:\n%s\nwant:\n%s", out.String(), wantJSON)
	}

	p, out = newTestDisplay(formatYAML)
	p.message(res)
	p.message(&logbookv1.HeadResponse{Position: 3})
	wantYAML := `units:
- connected: true
  labels:
    site: north
  lastSeen: "2026-11-22T12:00:00Z"
  name: ship1
  position: "17"
---
position: "3"
`
	if out.String() != wantYAML {
		t.Errorf("yaml:\n%s\nwant:\n%s", out.String(), wantYAML)
	}

	p, out = newTestDisplay(formatJSON)
	p.streamed(&logbookv1.HeadResponse{Position: 3})
	p.streamed(&logbookv1.HeadResponse{Position: 4})
	if want := "{\"position\":\"3\"}\n{\"position\":\"4\"}\n"; out.String() != want {
		t.Errorf("json stream: %q, want %q", out.String(), want)
	}
}

func TestWritten(t *testing.T) {
	p, out := newTestDisplay(formatTable)
	res := &logbookv1.SetUnitLabelsResponse{Appended: &logbookv1.Appended{Stream: "unit-ship1", Version: 4, Position: 1207, Events: 1}}
	p.written(res, res.GetAppended(), "unit/ship1", "labelled")
	p.written(res, &logbookv1.Appended{}, "unit/ship1", "labelled")
	if want := "unit/ship1 labelled (version 4, position 1207)\nunit/ship1 unchanged\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestEventView(t *testing.T) {
	data, err := proto.Marshal(&logbookv1.UnitLabelsSet{Labels: map[string]string{"site": "north"}})
	if err != nil {
		t.Fatal(err)
	}
	ev := &logbookv1.Event{Stream: "unit-ship1", Version: 2, Position: 9, Type: "logbook.v1.UnitLabelsSet", Data: data,
		Time: timestamppb.New(testNow), Metadata: &logbookv1.Metadata{Principal: "operator:alice"}}
	p, out := newTestDisplay(formatTable)
	printEvent(p, ev)
	for _, want := range []string{"9", "unit-ship1", "v2", "UnitLabelsSet", "operator:alice", `{"labels":{"site":"north"}}`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table line %q lacks %q", out.String(), want)
		}
	}
	p, out = newTestDisplay(formatJSON)
	printEvent(p, ev)
	if !strings.Contains(out.String(), `"payload":{"labels":{"site":"north"}}`) || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("json line: %s", out.String())
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"ship1": "ship1", "nats://cp:4222": "nats://cp:4222", "a b": "'a b'", "it's": `'it'\''s'`, "": "''"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}
