package events_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func eventsEqual(a, b events.Event) bool {
	return a.ID == b.ID && a.Stream == b.Stream && a.Version == b.Version && a.Position == b.Position &&
		a.Time.Equal(b.Time) && a.Type == b.Type && bytes.Equal(a.Data, b.Data) && a.Metadata == b.Metadata &&
		a.PrevHash == b.PrevHash && a.Hash == b.Hash
}

func TestProtoRoundTrip(t *testing.T) {
	full := sampleEvent()
	full.PrevHash = events.Hash{1, 2, 3}
	full.Hash = events.ChainHash(full.PrevHash, &full)
	for _, e := range []events.Event{full, {ID: events.NewID()}, {ID: events.NewID(), Time: time.Unix(0, 1).In(time.FixedZone("x", -3600))}} {
		wire, err := proto.Marshal(events.ToProto(e))
		if err != nil {
			t.Fatal(err)
		}
		var p logbookv1.Event
		if err := proto.Unmarshal(wire, &p); err != nil {
			t.Fatal(err)
		}
		got, err := events.FromProto(&p)
		if err != nil {
			t.Fatalf("FromProto(ToProto(%+v)): %v", e, err)
		}
		if !eventsEqual(got, e) {
			t.Fatalf("round trip: got %+v, want %+v", got, e)
		}
	}
}

func TestFromProtoInvalid(t *testing.T) {
	valid := func() *logbookv1.Event { e := sampleEvent(); return events.ToProto(e) }
	tests := map[string]func(p *logbookv1.Event){
		"no id":          func(p *logbookv1.Event) { p.Id = nil },
		"short id":       func(p *logbookv1.Event) { p.Id = p.Id[:15] },
		"long id":        func(p *logbookv1.Event) { p.Id = append(p.Id, 0) },
		"short hash":     func(p *logbookv1.Event) { p.Hash = make([]byte, 31) },
		"long prev hash": func(p *logbookv1.Event) { p.PrevHash = make([]byte, 33) },
		"bad nanos":      func(p *logbookv1.Event) { p.Time = &timestamppb.Timestamp{Seconds: 1, Nanos: 1e9} },
		"bad seconds":    func(p *logbookv1.Event) { p.Time = &timestamppb.Timestamp{Seconds: 1 << 40} },
	}
	for name, change := range tests {
		p := valid()
		change(p)
		if _, err := events.FromProto(p); !errors.Is(err, events.ErrInvalidEvent) {
			t.Errorf("%s: FromProto = %v, want ErrInvalidEvent", name, err)
		}
	}
	// Optional parts may be missing.
	p := valid()
	p.Metadata, p.Time, p.Hash, p.PrevHash = nil, nil, nil, nil
	e, err := events.FromProto(p)
	if err != nil || e.Metadata != (events.Metadata{}) || !e.Time.IsZero() || !e.Hash.IsZero() || !e.PrevHash.IsZero() {
		t.Fatalf("FromProto without optional parts = %+v, %v", e, err)
	}
}

func FuzzFromProto(f *testing.F) {
	full := sampleEvent()
	full.Hash = events.ChainHash(full.PrevHash, &full)
	for _, e := range []events.Event{full, {ID: events.NewID()}, {}} {
		b, _ := proto.Marshal(events.ToProto(e))
		f.Add(b)
	}
	bad, _ := proto.Marshal(&logbookv1.Event{Id: make([]byte, 16), Hash: []byte{1}, Time: &timestamppb.Timestamp{Nanos: -1}})
	f.Add(bad)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x10})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p logbookv1.Event
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		e, err := events.FromProto(&p)
		if err != nil {
			if !errors.Is(err, events.ErrInvalidEvent) {
				t.Fatalf("FromProto: %v does not wrap ErrInvalidEvent", err)
			}
			return
		}
		wire, err := proto.Marshal(events.ToProto(e))
		if err != nil {
			t.Fatalf("Marshal(ToProto(%+v)): %v", e, err)
		}
		var p2 logbookv1.Event
		if err := proto.Unmarshal(wire, &p2); err != nil {
			t.Fatal(err)
		}
		e2, err := events.FromProto(&p2)
		if err != nil {
			t.Fatalf("FromProto(ToProto(accepted event)): %v", err)
		}
		if !eventsEqual(e, e2) {
			t.Fatalf("round trip changed the event: %+v became %+v", e, e2)
		}
		_ = events.ChainHash(e.PrevHash, &e) // hashing outside input must not panic
	})
}
