package raft

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/storetest"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// wireEvents returns prepared events of stream with every field the wire
// carries set on some of them.
func wireEvents(stream string, n int) []events.Event {
	evs := storetest.NewEvents(n)
	for i := range evs {
		evs[i].Stream = stream
		evs[i].Time = time.Unix(1_700_000_000, int64(i)).UTC()
		if i%2 == 1 {
			evs[i].Metadata = events.Metadata{CorrelationID: "corr", CausationID: "cause", Principal: "op@fleet"}
			evs[i].Data = nil
		}
	}
	return evs
}

// The hand encoder writes the bytes the generated code writes.
func TestWireAppendMatchesProto(t *testing.T) {
	for _, c := range []struct {
		stream string
		expect events.Expect
		n      int
	}{
		{"unit-a", events.Any, 1},
		{"unit-b", events.NoStream, 3},
		{"unit-c", events.Exists, 2},
		{"unit-d", events.Exactly(41), 4},
	} {
		evs := wireEvents(c.stream, c.n)
		want, err := proto.Marshal(encodeAppend(c.stream, c.expect, evs))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendWireAppend(nil, c.stream, c.expect, evs); !bytes.Equal(got, want) {
			t.Errorf("%s: hand-encoded append differs from proto.Marshal:\n got %x\nwant %x", c.stream, got, want)
		}
	}
}

// command returns a RaftCommand entry of appends encoded by hand.
func command(appends ...[]byte) []byte {
	var cmd []byte
	for _, a := range appends {
		cmd = appendCommandField(cmd, a)
	}
	return cmd
}

func TestDecodeCommand(t *testing.T) {
	a := wireEvents("unit-a", 2)
	b := wireEvents("unit-b", 1)
	cmd := command(appendWireAppend(nil, "unit-a", events.Exactly(7), a), appendWireAppend(nil, "unit-b", events.NoStream, b))
	decoded, err := decodeCommand(cmd)
	if err != nil {
		t.Fatal(err)
	}
	var calls []appendCall
	for i, d := range decoded {
		if d.err != nil {
			t.Fatalf("append %d: %v", i, d.err)
		}
		calls = append(calls, d.call)
	}
	want := []appendCall{{"unit-a", events.Exactly(7), a}, {"unit-b", events.NoStream, b}}
	if len(calls) != len(want) {
		t.Fatalf("%d appends, want %d", len(calls), len(want))
	}
	for i, w := range want {
		if calls[i].stream != w.stream || calls[i].expect != w.expect || len(calls[i].events) != len(w.events) {
			t.Fatalf("append %d: %+v, want %+v", i, calls[i], w)
		}
		for j := range w.events {
			if d := storetest.EventDiff(w.events[j], calls[i].events[j]); d != "" {
				t.Errorf("append %d event %d: %s", i, j, d)
			}
		}
	}

	// A malformed append fails the whole entry.
	bad := command(appendWireAppend(nil, "unit-a", events.Any, a), []byte{0x0a, 0x05, 'x'})
	if got, err := decodeCommand(bad); err == nil {
		t.Fatalf("malformed entry decoded into %d appends", len(got))
	}
}

// FuzzCommandWire holds decodeCommand to what proto.Unmarshal and
// decodeAppend make of the same bytes: the same entries fail, the same
// appends fail with the same errors, and the rest decode to the same
// appends. Replicas on either decoder must apply every entry alike.
func FuzzCommandWire(f *testing.F) {
	evs := wireEvents("unit-a", 3)
	good := appendWireAppend(nil, "unit-a", events.Exactly(3), evs)
	f.Add(command(good))
	f.Add(command(good, appendWireAppend(nil, "unit-b", events.Any, wireEvents("unit-b", 1))))
	// Unknown fields, a known field of another wire type, a repeated scalar.
	odd := protowire.AppendTag(append([]byte(nil), good...), 99, protowire.VarintType)
	odd = protowire.AppendVarint(odd, 5)
	odd = protowire.AppendTag(odd, fieldAppendStream, protowire.VarintType)
	odd = protowire.AppendVarint(odd, 1)
	odd = protowire.AppendTag(odd, fieldAppendExpectVersion, protowire.VarintType)
	odd = protowire.AppendVarint(odd, 9)
	f.Add(command(odd))
	f.Add(command(appendWireAppend(nil, "unit-a", events.Any, []events.Event{{ID: evs[0].ID}})))
	f.Add([]byte{0x0a, 0x02, 0x10, 0x09})             // expect kind 9
	f.Add([]byte{0x0a, 0x04, 0x22, 0x02, 0x0a, 0x00}) // an event with an empty id
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 0xff})       // stream not UTF-8
	f.Add([]byte{0x0b, 0x0c})                         // a group
	f.Add([]byte{0x0c})                               // an end of group
	f.Add([]byte{0xf8, 0xff, 0xff, 0xff, 0x0f, 0x00}) // field number above the greatest
	f.Fuzz(func(t *testing.T, data []byte) {
		var cmd logbookv1.RaftCommand
		refErr := proto.Unmarshal(data, &cmd)
		got, err := decodeCommand(data)
		if (err != nil) != (refErr != nil) {
			t.Fatalf("entry: decodeCommand %v, proto.Unmarshal %v", err, refErr)
		}
		if err != nil {
			return
		}
		if len(got) != len(cmd.GetAppends()) {
			t.Fatalf("%d appends, proto has %d", len(got), len(cmd.GetAppends()))
		}
		for i, pa := range cmd.GetAppends() {
			want, wantErr := decodeAppend(pa)
			g := got[i]
			if (g.err != nil) != (wantErr != nil) || (wantErr != nil && g.err.Error() != wantErr.Error()) {
				t.Fatalf("append %d: error %v, want %v", i, g.err, wantErr)
			}
			if wantErr != nil {
				continue
			}
			if g.call.stream != want.stream || g.call.expect != want.expect || len(g.call.events) != len(want.events) {
				t.Fatalf("append %d: %s %v %d events, want %s %v %d", i, g.call.stream, g.call.expect, len(g.call.events), want.stream, want.expect, len(want.events))
			}
			for j, w := range want.events {
				e := g.call.events[j]
				if e.ID != w.ID || !e.Time.Equal(w.Time) || e.Type != w.Type || !bytes.Equal(e.Data, w.Data) || e.Metadata != w.Metadata || e.Stream != w.Stream {
					t.Fatalf("append %d event %d: %+v, want %+v", i, j, e, w)
				}
			}
		}
	})
}
