package raft

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/events/storetest"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// FuzzNodeCall decodes bytes as a peer would send them on a node-call
// connection: frames, requests, and the appends they carry.
func FuzzNodeCall(f *testing.F) {
	evs := storetest.NewEvents(2)
	for i := range evs {
		evs[i].Stream = "fuzz-a"
		evs[i].Time = evs[i].Time.Add(1)
	}
	reqs := []*logbookv1.NodeRequest{
		{Call: &logbookv1.NodeRequest_Append{Append: &logbookv1.ForwardAppendRequest{Append: encodeAppend("fuzz-a", events.Exactly(3), evs)}}},
		{Call: &logbookv1.NodeRequest_Join{Join: &logbookv1.JoinRequest{Id: "n2", Address: "127.0.0.1:7400"}}},
		{Call: &logbookv1.NodeRequest_Status{Status: &logbookv1.StatusRequest{}}},
	}
	for _, r := range reqs {
		var buf bytes.Buffer
		if err := writeFrame(&buf, r); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0, 0, 0, 3, 0xff, 0xff, 0xff})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			var req logbookv1.NodeRequest
			if err := readFrame(r, &req); err != nil {
				return
			}
			a := req.GetAppend().GetAppend()
			if a == nil {
				continue
			}
			call, err := decodeAppend(a)
			if err != nil {
				continue
			}
			if err := events.ValidateAppend(call.stream, call.events); err != nil {
				continue
			}
			// What decodes re-encodes to the same append.
			again, err := decodeAppend(encodeAppend(call.stream, call.expect, call.events))
			if err != nil || again.expect != call.expect || len(again.events) != len(call.events) {
				t.Fatalf("re-decoding a valid append: %v", err)
			}
			for i := range call.events {
				if d := storetest.EventDiff(call.events[i], again.events[i]); d != "" {
					t.Fatalf("event %d changed on re-encoding: %s", i, d)
				}
			}
		}
	})
}

// FuzzSnapshot decodes bytes as a snapshot installed from a leader.
func FuzzSnapshot(f *testing.F) {
	st, err := embedded.Open(context.Background(), "mem", embedded.InMemory())
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	storetest.MustAppend(f, st, "snap-a", events.NoStream, storetest.NewEvents(3)...)
	storetest.MustAppend(f, st, "snap-b", events.Any, storetest.NewEvents(2)...)
	head := storetest.MustHead(f, st)
	var buf bytes.Buffer
	if err := writeSnapshot(context.Background(), &buf, st, head); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(snapshotMagic))
	f.Add(append([]byte(snapshotMagic), 0xff, 0xff, 0xff, 0xff, 0x0f))
	f.Fuzz(func(t *testing.T, data []byte) {
		sr, err := newSnapshotReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		var prev events.Hash
		for {
			ev, err := sr.Next()
			if errors.Is(err, io.EOF) {
				if prev != sr.head.Hash {
					t.Fatalf("snapshot read to its end does not end at its head hash")
				}
				return
			}
			if err != nil {
				return
			}
			if ev.PrevHash != prev || ev.Hash != events.ChainHash(ev.PrevHash, &ev) {
				t.Fatalf("reader accepted event %d that does not chain", ev.Position)
			}
			prev = ev.Hash
		}
	})
}

// A frame carries a message as proto encodes it.
func TestFrameRoundTrip(t *testing.T) {
	want := &logbookv1.NodeRequest{Call: &logbookv1.NodeRequest_Join{Join: &logbookv1.JoinRequest{Id: "n9", Address: "10.0.0.9:7400"}}}
	var buf bytes.Buffer
	if err := writeFrame(&buf, want); err != nil {
		t.Fatal(err)
	}
	var got logbookv1.NodeRequest
	if err := readFrame(&buf, &got); err != nil || !proto.Equal(&got, want) {
		t.Fatalf("readFrame = %v, %v; want %v", &got, err, want)
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	if err := readFrame(bytes.NewReader(huge), &got); err == nil {
		t.Fatal("readFrame accepted a frame over the limit")
	}
}
