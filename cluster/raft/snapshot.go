package raft

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	hraft "github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// A raft snapshot is the event log up to a position, self-describing:
//
//	snapshotMagic
//	head position (uvarint), head hash (32 bytes)
//	for each position 1..head: length (uvarint), logbook.v1.ClusterEvent (every field set)
//
// Snapshots travel between nodes (InstallSnapshot), so the reader checks
// everything it decodes: bounded lengths, dense positions, the hash chain.

const snapshotMagic = "logbook raft snapshot v1\n"

// maxSnapshotEvent bounds one encoded event in a snapshot: the largest
// payload plus generous room for the envelope.
const maxSnapshotEvent = events.MaxDataLen + 64<<10

// fsmSnapshot is the FSM's state when raft asked for a snapshot: the log up
// to head. The log is append-only, so Persist can read it later while the
// FSM applies newer entries.
type fsmSnapshot struct {
	store events.Store
	head  events.Head
}

// Persist writes the snapshot to sink.
func (s *fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, 1<<20)
	if err := writeSnapshot(context.Background(), w, s.store, s.head); err != nil {
		return errors.Join(fmt.Errorf("raft: persist snapshot at position %d: %w", s.head.Position, err), sink.Cancel())
	}
	if err := w.Flush(); err != nil {
		return errors.Join(fmt.Errorf("raft: persist snapshot: %w", err), sink.Cancel())
	}
	return sink.Close()
}

// Release implements hraft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}

// writeSnapshot writes the log of st up to head to w.
func writeSnapshot(ctx context.Context, w io.Writer, st events.Store, head events.Head) error {
	hdr := append([]byte(snapshotMagic), binary.AppendUvarint(nil, head.Position)...)
	hdr = append(hdr, head.Hash[:]...)
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	if head.Position == 0 {
		return nil
	}
	var buf []byte
	want := uint64(1)
	for ev, err := range st.ReadAll(ctx, 1, events.Filter{}) {
		if err != nil {
			return fmt.Errorf("read log at position %d: %w", want, err)
		}
		if ev.Position != want {
			return fmt.Errorf("log yields position %d, want %d", ev.Position, want)
		}
		b, err := proto.MarshalOptions{}.MarshalAppend(buf[:0], encodeEvent(&ev, true))
		if err != nil {
			return fmt.Errorf("encode event at position %d: %w", ev.Position, err)
		}
		buf = b
		if _, err := w.Write(binary.AppendUvarint(nil, uint64(len(b)))); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		if ev.Position == head.Position {
			if ev.Hash != head.Hash {
				return fmt.Errorf("%w: hash at position %d is %s, snapshot head says %s", ErrDiverged, ev.Position, ev.Hash, head.Hash)
			}
			return nil
		}
		want++
	}
	return fmt.Errorf("log ends at position %d, before the snapshot head %d", want-1, head.Position)
}

// snapshotReader decodes a snapshot.
type snapshotReader struct {
	r    *bufio.Reader
	head events.Head
	next uint64      // position of the next event
	prev events.Hash // hash of the event before next
	buf  []byte
}

// newSnapshotReader reads the snapshot's header.
func newSnapshotReader(r io.Reader) (*snapshotReader, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 1<<20)
	}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, fmt.Errorf("snapshot header: %w", noEOF(err))
	}
	if string(magic) != snapshotMagic {
		return nil, fmt.Errorf("snapshot header: not a logbook raft snapshot")
	}
	pos, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("snapshot header: head position: %w", noEOF(err))
	}
	s := &snapshotReader{r: br, head: events.Head{Position: pos}, next: 1}
	if _, err := io.ReadFull(br, s.head.Hash[:]); err != nil {
		return nil, fmt.Errorf("snapshot header: head hash: %w", noEOF(err))
	}
	if pos == 0 && !s.head.Hash.IsZero() {
		return nil, fmt.Errorf("snapshot header: empty log with a non-zero head hash")
	}
	return s, nil
}

// Next returns the next event, checked against the chain, or io.EOF after
// the head.
func (s *snapshotReader) Next() (events.Event, error) {
	if s.next > s.head.Position {
		return events.Event{}, io.EOF
	}
	n, err := binary.ReadUvarint(s.r)
	if err != nil {
		return events.Event{}, fmt.Errorf("snapshot event %d: length: %w", s.next, noEOF(err))
	}
	if n > maxSnapshotEvent {
		return events.Event{}, fmt.Errorf("snapshot event %d: %d bytes, at most %d allowed", s.next, n, maxSnapshotEvent)
	}
	if uint64(cap(s.buf)) < n {
		s.buf = make([]byte, n)
	}
	b := s.buf[:n]
	if _, err := io.ReadFull(s.r, b); err != nil {
		return events.Event{}, fmt.Errorf("snapshot event %d: %w", s.next, noEOF(err))
	}
	var p logbookv1.ClusterEvent
	if err := proto.Unmarshal(b, &p); err != nil {
		return events.Event{}, fmt.Errorf("snapshot event %d: %w", s.next, err)
	}
	ev, err := decodeEvent(&p, true)
	if err != nil {
		return events.Event{}, fmt.Errorf("snapshot event %d: %w", s.next, err)
	}
	ev.Data = append([]byte(nil), ev.Data...) // b is reused
	switch {
	case ev.Version == 0:
		return events.Event{}, fmt.Errorf("snapshot event %d: has version 0", s.next)
	case ev.Position != s.next:
		return events.Event{}, fmt.Errorf("snapshot event %d: has position %d", s.next, ev.Position)
	case ev.PrevHash != s.prev:
		return events.Event{}, fmt.Errorf("snapshot event %d: previous hash does not chain", s.next)
	case ev.Hash != events.ChainHash(ev.PrevHash, &ev):
		return events.Event{}, fmt.Errorf("snapshot event %d: hash does not match its content", s.next)
	case ev.Position == s.head.Position && ev.Hash != s.head.Hash:
		return events.Event{}, fmt.Errorf("snapshot event %d: hash differs from the snapshot head's", s.next)
	}
	s.prev = ev.Hash
	s.next++
	return ev, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
