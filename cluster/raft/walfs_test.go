package raft

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	hraft "github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
)

// The raft log on walFS: entries written across segment rolls and
// restarts (raft-wal reopening a segment that has zeros after its last
// entry) read back whole.
func TestWALFSRoundTrip(t *testing.T) {
	dir := t.TempDir()
	const segSize = 64 << 10 // several rolls, each smaller than zeroChunk
	open := func() (*raftwal.WAL, *metadb.BoltMetaDB) {
		t.Helper()
		meta := &metadb.BoltMetaDB{}
		w, err := raftwal.Open(dir, raftwal.WithMetaStore(meta), raftwal.WithSegmentSize(segSize),
			raftwal.WithSegmentFiler(segment.NewFiler(dir, newWALFS())))
		if err != nil {
			t.Fatal(err)
		}
		return w, meta
	}
	entry := func(i uint64) *hraft.Log {
		return &hraft.Log{Index: i, Term: 1, Type: hraft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, 300+int(i%7))}
	}
	next := uint64(1)
	for round := range 3 {
		w, meta := open()
		if last, err := w.LastIndex(); err != nil || last != next-1 {
			t.Fatalf("round %d: last index %d, %v; want %d", round, last, err, next-1)
		}
		for range 100 {
			batch := make([]*hraft.Log, 0, 4)
			for range 4 {
				batch = append(batch, entry(next))
				next++
			}
			if err := w.StoreLogs(batch); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := meta.Close(); err != nil {
			t.Fatal(err)
		}
	}
	w, meta := open()
	defer meta.Close()
	defer w.Close()
	for i := uint64(1); i < next; i++ {
		var got hraft.Log
		if err := w.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if want := entry(i); !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("entry %d: %d bytes of %x, want %d of %x", i, len(got.Data), got.Data[:1], len(want.Data), want.Data[:1])
		}
	}
	segs, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil || len(segs) < 3 {
		t.Fatalf("%d segment files (%v), want several", len(segs), err)
	}
	for _, seg := range segs {
		st, err := os.Stat(seg)
		if err != nil {
			t.Fatal(err)
		}
		// raft-wal itself writes a segment's last entries and index past
		// its size limit; zeros go at most one chunk further (a segment
		// reopened after a restart has no known limit).
		if st.Size() > segSize+zeroChunk+4096 {
			t.Errorf("%s: %d bytes, more than a chunk past the segment size %d", filepath.Base(seg), st.Size(), segSize)
		}
	}
}

// A new segment file grows by zero-filled chunks ahead of the writes.
func TestWALFileZeroFillsAhead(t *testing.T) {
	dir := t.TempDir()
	f, err := newWALFS().Create(dir, "seg", 4*zeroChunk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := func() int64 {
		st, err := os.Stat(filepath.Join(dir, "seg"))
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	for i, tc := range []struct {
		off, n   int64
		wantSize int64
	}{
		{0, 100, 100 + zeroChunk},                     // first write: a chunk ahead
		{100, 1000, 100 + zeroChunk},                  // within the zeros
		{zeroChunk, 200, zeroChunk + 200 + zeroChunk}, // past them: the next chunk
		{4*zeroChunk - 10, 10, 4 * zeroChunk},         // at the limit: nothing past it
	} {
		p := bytes.Repeat([]byte{0xab}, int(tc.n))
		if _, err := f.WriteAt(p, tc.off); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if got := size(); got != tc.wantSize {
			t.Errorf("write %d at %d (+%d): file is %d bytes, want %d", i, tc.off, tc.n, got, tc.wantSize)
		}
		got := make([]byte, tc.n)
		if _, err := f.ReadAt(got, tc.off); err != nil || !bytes.Equal(got, p) {
			t.Fatalf("read back write %d: %v", i, err)
		}
	}
}
