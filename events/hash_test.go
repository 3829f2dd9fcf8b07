package events_test

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/logbook-fleet/logbook/events"
)

func sampleEvent() events.Event {
	return events.Event{
		ID:       uuid.MustParse("0190c5e2-7b1a-7cc0-8f00-0123456789ab"),
		Stream:   "unit-ship1",
		Version:  3,
		Position: 42,
		Time:     time.Date(2026, 11, 22, 10, 11, 12, 123456789, time.UTC),
		Type:     "logbook.v1.UnitRegistered",
		Data:     []byte{0x0a, 0x05, 's', 'h', 'i', 'p', '1'},
		Metadata: events.Metadata{CorrelationID: "corr", CausationID: "cause", Principal: "op@fleet"},
	}
}

// canonical is ChainHash's documentation, written out independently.
func canonical(prev events.Hash, e events.Event) events.Hash {
	var c []byte
	c = binary.BigEndian.AppendUint64(c, uint64(e.Time.UnixNano()))
	c = append(c, e.ID[:]...)
	for _, s := range []string{e.Stream, e.Type, string(e.Data), e.Metadata.CorrelationID, e.Metadata.CausationID, e.Metadata.Principal} {
		c = binary.AppendUvarint(c, uint64(len(s)))
		c = append(c, s...)
	}
	digest := sha256.Sum256(c)
	var b []byte
	b = append(b, prev[:]...)
	b = binary.BigEndian.AppendUint64(b, e.Position)
	b = binary.BigEndian.AppendUint64(b, e.Version)
	b = append(b, digest[:]...)
	return sha256.Sum256(b)
}

func TestChainHashDocumented(t *testing.T) {
	prev := events.Hash{1, 2, 3}
	e := sampleEvent()
	if got, want := events.ChainHash(prev, &e), canonical(prev, e); got != want {
		t.Fatalf("ChainHash = %s, the documented encoding gives %s", got, want)
	}
	// Pinned: changing the canonical encoding invalidates every stored log.
	const golden = "39e7d85aff0cebeaa28b19db55ddaee14ab92f7ec61750b7c49b3cb1ee95c2a3"
	if got := events.ChainHash(prev, &e).String(); got != golden {
		t.Fatalf("ChainHash(sample) = %s, want %s", got, golden)
	}
}

func TestChainHashCoversEveryField(t *testing.T) {
	base := sampleEvent()
	prev := events.Hash{9}
	h0 := events.ChainHash(prev, &base)
	if h0 != events.ChainHash(prev, &base) {
		t.Fatal("ChainHash is not deterministic")
	}
	changes := map[string]func(e *events.Event){
		"ID":            func(e *events.Event) { e.ID[15]++ },
		"Stream":        func(e *events.Event) { e.Stream = "unit-ship2" },
		"Version":       func(e *events.Event) { e.Version++ },
		"Position":      func(e *events.Event) { e.Position++ },
		"Time":          func(e *events.Event) { e.Time = e.Time.Add(time.Nanosecond) },
		"Type":          func(e *events.Event) { e.Type += "2" },
		"Data":          func(e *events.Event) { e.Data = append([]byte(nil), e.Data...); e.Data[0]++ },
		"Data appended": func(e *events.Event) { e.Data = append(append([]byte(nil), e.Data...), 0) },
		"CorrelationID": func(e *events.Event) { e.Metadata.CorrelationID = "corr2" },
		"CausationID":   func(e *events.Event) { e.Metadata.CausationID = "" },
		"Principal":     func(e *events.Event) { e.Metadata.Principal = "op@fleeT" },
		"field boundary": func(e *events.Event) { // same bytes, split differently
			e.Metadata.CorrelationID, e.Metadata.CausationID = "corrc", "ause"
		},
	}
	seen := map[events.Hash]string{h0: "base"}
	for name, change := range changes {
		e := sampleEvent()
		change(&e)
		h := events.ChainHash(prev, &e)
		if other, dup := seen[h]; dup {
			t.Errorf("changing %s gives the same hash as %s", name, other)
		}
		seen[h] = name
	}
	if events.ChainHash(events.Hash{8}, &base) == h0 {
		t.Error("the previous hash does not change the hash")
	}
	withHashes := sampleEvent()
	withHashes.PrevHash, withHashes.Hash = events.Hash{7}, events.Hash{6}
	if events.ChainHash(prev, &withHashes) != h0 {
		t.Error("the event's own PrevHash and Hash fields change its hash; they must not")
	}
	utc := sampleEvent()
	utc.Time = utc.Time.In(time.FixedZone("x", 3600))
	if events.ChainHash(prev, &utc) != h0 {
		t.Error("the time zone changes the hash; only the instant may")
	}
}

func TestHash(t *testing.T) {
	var h events.Hash
	if !h.IsZero() || h.String() != "0000000000000000000000000000000000000000000000000000000000000000" {
		t.Errorf("zero Hash: IsZero %v, String %s", h.IsZero(), h)
	}
	h[0], h[31] = 0xab, 0x01
	if h.IsZero() || h.String() != "ab00000000000000000000000000000000000000000000000000000000000001" {
		t.Errorf("Hash %s: IsZero %v", h, h.IsZero())
	}
}
