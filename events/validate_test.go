package events_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/logbook-fleet/logbook/events"
)

func validEvents(n int) []events.Event {
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = events.Event{ID: events.NewID(), Type: "logbook.test.T", Data: []byte{byte(i)}}
	}
	return evs
}

func TestValidateAppend(t *testing.T) {
	with := func(f func(*events.Event)) []events.Event {
		evs := validEvents(3)
		f(&evs[1])
		return evs
	}
	long := strings.Repeat("m", events.MaxMetadataFieldLen+1)
	dup := validEvents(3)
	dup[2].ID = dup[0].ID
	tests := []struct {
		name   string
		stream string
		evs    []events.Event
		want   error
	}{
		{"ok", "unit-x", validEvents(3), nil},
		{"ok at the limits", "unit-x", with(func(e *events.Event) {
			e.Type = strings.Repeat("t", events.MaxTypeLen)
			e.Data = make([]byte, events.MaxDataLen)
			e.Metadata = events.Metadata{CorrelationID: long[1:], CausationID: long[1:], Principal: long[1:]}
			e.Time = events.MaxTime
		}), nil},
		{"ok at MinTime", "unit-x", with(func(e *events.Event) { e.Time = events.MinTime }), nil},
		{"bad stream", "unit x", validEvents(1), events.ErrInvalidStreamName},
		{"bad stream and no events", "", nil, events.ErrInvalidStreamName},
		{"no events", "unit-x", nil, events.ErrInvalidEvent},
		{"empty slice", "unit-x", []events.Event{}, events.ErrInvalidEvent},
		{"zero id", "unit-x", with(func(e *events.Event) { e.ID = uuid.Nil }), events.ErrInvalidEvent},
		{"empty type", "unit-x", with(func(e *events.Event) { e.Type = "" }), events.ErrInvalidEvent},
		{"long type", "unit-x", with(func(e *events.Event) { e.Type = strings.Repeat("t", events.MaxTypeLen+1) }), events.ErrInvalidEvent},
		{"large data", "unit-x", with(func(e *events.Event) { e.Data = make([]byte, events.MaxDataLen+1) }), events.ErrInvalidEvent},
		{"long correlation", "unit-x", with(func(e *events.Event) { e.Metadata.CorrelationID = long }), events.ErrInvalidEvent},
		{"long causation", "unit-x", with(func(e *events.Event) { e.Metadata.CausationID = long }), events.ErrInvalidEvent},
		{"long principal", "unit-x", with(func(e *events.Event) { e.Metadata.Principal = long }), events.ErrInvalidEvent},
		{"time too early", "unit-x", with(func(e *events.Event) { e.Time = events.MinTime.Add(-1) }), events.ErrInvalidEvent},
		{"time too late", "unit-x", with(func(e *events.Event) { e.Time = events.MaxTime.Add(1) }), events.ErrInvalidEvent},
		{"duplicate id", "unit-x", dup, events.ErrInvalidEvent},
		{"too many events", "unit-x", validEvents(events.MaxAppendEvents + 1), events.ErrInvalidEvent},
		{"too much data", "unit-x", func() []events.Event {
			evs := validEvents(events.MaxAppendLen/events.MaxDataLen + 1)
			big := make([]byte, events.MaxDataLen)
			for i := range evs {
				evs[i].Data = big
			}
			return evs
		}(), events.ErrInvalidEvent},
	}
	for _, tc := range tests {
		err := events.ValidateAppend(tc.stream, tc.evs)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: ValidateAppend = %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := events.MinTime.UnixNano(); got != -1<<63 || !events.MinTime.Equal(time.Unix(0, got)) {
		t.Errorf("MinTime %v is not the earliest int64 nanosecond", events.MinTime)
	}
}

func TestPrepareAppend(t *testing.T) {
	evs := validEvents(3)
	zone := time.FixedZone("x", 5*3600)
	evs[1].Time = time.Date(2026, 1, 2, 3, 4, 5, 6, zone)
	evs[2].Stream, evs[2].Version, evs[2].Position = "ignored-y", 9, 9
	orig := slices.Clone(evs)
	now := time.Date(2026, 11, 22, 12, 0, 0, 1, time.FixedZone("y", -7200))

	out, err := events.PrepareAppend("unit-x", evs, now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if !eventsEqual(evs[i], orig[i]) || evs[i].Time.Location() != orig[i].Time.Location() {
			t.Fatalf("PrepareAppend changed the caller's event %d: %+v, was %+v", i, evs[i], orig[i])
		}
	}
	if len(out) != 3 {
		t.Fatalf("PrepareAppend returned %d events", len(out))
	}
	for i, e := range out {
		if e.Stream != "unit-x" || e.ID != evs[i].ID || e.Time.Location() != time.UTC {
			t.Fatalf("prepared event %d = %+v", i, e)
		}
	}
	if !out[0].Time.Equal(now) || !out[2].Time.Equal(now) || !out[1].Time.Equal(evs[1].Time) {
		t.Fatalf("prepared times %v %v %v; want now, the given time, now", out[0].Time, out[1].Time, out[2].Time)
	}
	if _, err := events.PrepareAppend("unit-x", nil, now); !errors.Is(err, events.ErrInvalidEvent) {
		t.Fatalf("PrepareAppend with no events: %v", err)
	}
}

// PrepareOwnedAppend prepares the caller's slice itself, as PrepareAppend
// prepares its copy, and leaves it alone when the append is invalid.
func TestPrepareOwnedAppend(t *testing.T) {
	evs := validEvents(3)
	evs[1].Time = time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 5*3600))
	now := time.Date(2026, 11, 22, 12, 0, 0, 1, time.FixedZone("y", -7200))
	want, err := events.PrepareAppend("unit-x", evs, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.PrepareOwnedAppend("unit-x", evs, now); err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if !eventsEqual(evs[i], want[i]) || evs[i].Time.Location() != time.UTC {
			t.Fatalf("event %d prepared in place: %+v, want %+v", i, evs[i], want[i])
		}
	}

	bad := validEvents(2)
	bad[1].ID = bad[0].ID
	orig := slices.Clone(bad)
	if err := events.PrepareOwnedAppend("unit-x", bad, now); err == nil {
		t.Fatal("an append repeating an id was prepared")
	}
	for i := range bad {
		if !eventsEqual(bad[i], orig[i]) {
			t.Fatalf("a refused append changed event %d: %+v, was %+v", i, bad[i], orig[i])
		}
	}
}

func TestErrors(t *testing.T) {
	var err error = &events.WrongExpectedVersionError{Stream: "unit-x", Expected: events.Exactly(3), Actual: 5}
	wrapped := errors.Join(errors.New("context"), err)
	var wev *events.WrongExpectedVersionError
	if !errors.Is(wrapped, events.ErrWrongExpectedVersion) || !errors.As(wrapped, &wev) || wev.Actual != 5 {
		t.Fatalf("WrongExpectedVersionError: Is/As fail on %v", wrapped)
	}
	if msg := err.Error(); !strings.Contains(msg, "unit-x") || !strings.Contains(msg, "version 3") || !strings.Contains(msg, "5") {
		t.Errorf("message %q lacks the stream or versions", msg)
	}
	err = &events.CorruptionError{Position: 17, Reason: "checksum mismatch"}
	var ce *events.CorruptionError
	if !errors.Is(err, events.ErrCorrupt) || !errors.As(err, &ce) || ce.Position != 17 || !strings.Contains(err.Error(), "17") {
		t.Fatalf("CorruptionError: %v", err)
	}
}
