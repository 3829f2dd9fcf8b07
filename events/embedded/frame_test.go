package embedded

import (
	"bytes"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/events"
)

func sampleFrame() []byte {
	evs := []events.Event{
		{ID: events.NewID(), Stream: "unit-ship1", Version: 4, Position: 10, Time: time.Unix(0, 12345).UTC(),
			Type: "logbook.v1.UnitRegistered", Data: []byte("payload"),
			Metadata: events.Metadata{CorrelationID: "c", CausationID: "d", Principal: "operator:ann"}},
		{ID: events.NewID(), Stream: "unit-ship1", Version: 5, Position: 11, Time: time.Unix(0, 12346).UTC(),
			Type: "logbook.v1.UnitLabelled"},
	}
	var prev events.Hash
	prev[0] = 7
	h := prev
	for i := range evs {
		evs[i].PrevHash = h
		evs[i].Hash = events.ChainHash(h, &evs[i])
		h = evs[i].Hash
	}
	return appendFrame(nil, prev, evs)
}

func TestFrameRoundTrip(t *testing.T) {
	b := sampleFrame()
	var f frame
	if err := decodeFrame(b, make(interner), &f); err != nil {
		t.Fatal(err)
	}
	if f.size != len(b) || len(f.events) != 2 || f.firstPos != 10 || f.lastPos() != 11 {
		t.Fatalf("decoded %+v", f)
	}
	if pos, why := checkChain(f.prevHash, &f); pos != 0 {
		t.Fatalf("chain broken at %d: %s", pos, why)
	}
	e := f.events[0]
	if e.Stream != "unit-ship1" || e.Version != 4 || string(e.Data) != "payload" || e.Metadata.Principal != "operator:ann" {
		t.Fatalf("event 0 = %+v", e)
	}
	// Every single-byte change is caught.
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		if err := decodeFrame(c, nil, &f); err == nil && frameLen(c) == len(b) {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
	}
}

// FuzzDecodeFrame feeds arbitrary bytes to the segment frame decoder: it
// must never panic, and whatever it accepts must re-encode to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(sampleFrame())
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr frame
		if err := decodeFrame(b, make(interner), &fr); err != nil {
			return
		}
		again := appendFrame(nil, fr.prevHash, fr.events)
		if !bytes.Equal(again, b[:fr.size]) {
			t.Fatalf("accepted frame does not re-encode to itself")
		}
	})
}
