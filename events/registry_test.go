package events_test

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

const metadataType = "logbook.v1.Metadata"

func TestRegistryDecode(t *testing.T) {
	var r events.Registry
	msg := &logbookv1.Metadata{CorrelationId: "c", Principal: "p"}
	ev, err := events.NewEvent(msg, events.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Decode(ev); !errors.Is(err, events.ErrUnknownType) {
		t.Fatalf("Decode with an empty registry: %v, want ErrUnknownType", err)
	}
	r.Register(msg)
	r.Register(&logbookv1.Metadata{}, &logbookv1.Snapshot{}) // twice is harmless
	if got := r.Types(); !slices.Contains(got, metadataType) || len(got) != 2 {
		t.Fatalf("Types() = %v", got)
	}
	if mt, ok := r.Lookup(metadataType); !ok || mt.Descriptor().FullName() != metadataType {
		t.Fatalf("Lookup(%s) = %v, %v", metadataType, mt, ok)
	}
	if _, ok := r.Lookup("logbook.v1.Nope"); ok {
		t.Fatal("Lookup of an unregistered type succeeded")
	}
	got, err := r.Decode(ev)
	if err != nil || !proto.Equal(got, msg) {
		t.Fatalf("Decode = %v, %v; want %v", got, err, msg)
	}

	unknown := ev
	unknown.Type = "logbook.v1.Nope"
	if _, err := r.Decode(unknown); !errors.Is(err, events.ErrUnknownType) {
		t.Fatalf("Decode of an unknown type: %v, want ErrUnknownType", err)
	}
	garbage := ev
	garbage.Data = []byte{0xff, 0xff, 0xff}
	if _, err := r.Decode(garbage); err == nil || errors.Is(err, events.ErrUnknownType) {
		t.Fatalf("Decode of garbage bytes: %v, want a decoding error", err)
	}
}

func TestRegistryConcurrent(t *testing.T) {
	var r events.Registry
	ev, _ := events.NewEvent(&logbookv1.Metadata{Principal: "p"}, events.Metadata{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				r.Register(&logbookv1.Metadata{})
				if _, err := r.Decode(ev); err != nil {
					t.Error(err)
					return
				}
				r.Types()
			}
		})
	}
	wg.Wait()
}

func TestNewEvent(t *testing.T) {
	md := events.Metadata{CorrelationID: "corr", CausationID: "cause", Principal: "op"}
	msg := &logbookv1.Metadata{CorrelationId: "payload"}
	a, err := events.NewEvent(msg, md)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := events.NewEvent(msg, md)
	if a.ID == uuid.Nil || a.ID.Version() != 7 || a.ID == b.ID {
		t.Fatalf("NewEvent ids %s, %s: want distinct UUIDv7s", a.ID, b.ID)
	}
	if a.Type != metadataType || a.Metadata != md || !a.Time.IsZero() || a.Stream != "" || a.Version != 0 || a.Position != 0 {
		t.Fatalf("NewEvent = %+v", a)
	}
	var back logbookv1.Metadata
	if err := proto.Unmarshal(a.Data, &back); err != nil || !proto.Equal(&back, msg) {
		t.Fatalf("NewEvent data decodes to %v, %v", &back, err)
	}
	if err := events.ValidateAppend("unit-x", []events.Event{a, b}); err != nil {
		t.Fatalf("events from NewEvent are not appendable: %v", err)
	}
}
