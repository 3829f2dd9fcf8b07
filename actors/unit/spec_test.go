package unit_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/kindtest"
	"github.com/logbook-fleet/logbook/actors/unit"
)

// The given/when/then helper: given(events...).when(cmd).then(events...) or
// .thenErr(sentinel), run as a table entry.

// t0 is "now" in every scenario unless .at moves it.
var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

const principal = "alice"

// ts is the timestamp d after t0.
func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }

type scenario struct {
	given   []proto.Message
	cmd     proto.Message
	now     time.Time
	want    []proto.Message
	wantErr error
}

func given(evs ...proto.Message) scenario { return scenario{given: evs, now: t0} }

func (s scenario) when(cmd proto.Message) scenario { s.cmd = cmd; return s }

// at makes the decision happen d after t0.
func (s scenario) at(d time.Duration) scenario { s.now = t0.Add(d); return s }

// then expects exactly evs (none when called without arguments).
func (s scenario) then(evs ...proto.Message) scenario { s.want = evs; return s }

// thenErr expects an error wrapping target, and no events.
func (s scenario) thenErr(target error) scenario { s.wantErr = target; return s }

// spec names a scenario for a table.
type spec struct {
	name string
	s    scenario
}

func runSpecs(t *testing.T, specs []spec) {
	t.Helper()
	for _, sp := range specs {
		t.Run(sp.name, func(t *testing.T) { sp.s.run(t, "ship1") })
	}
}

func (s scenario) run(t *testing.T, name string) {
	t.Helper()
	c := kindtest.Case{ID: name, Env: actors.Env{Now: s.now, Principal: principal}, Given: s.given, When: s.cmd, Then: s.want}
	if s.wantErr != nil {
		c.Errs = []error{s.wantErr}
	}
	if err := kindtest.Check(t, unit.Kind, c); err != nil && !strings.HasPrefix(err.Error(), "unit ") {
		t.Errorf("error %q does not name the unit", err)
	}
}

func show(m proto.Message) string { return kindtest.Text(m) }
