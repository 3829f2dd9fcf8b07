package raft

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/types"
)

// walFS is the file system of the raft log (raft-wal). It differs from
// raft-wal's own in how segment files get their space, the cost every
// append pays at least twice (the leader's write, then a follower's) before
// it is acknowledged:
//
//   - raft-wal preallocates a whole segment with fallocate, which leaves
//     its blocks unwritten: each sync of a write into them must also
//     journal their conversion to written, and it syncs with fsync. Here a
//     segment is instead filled with zeros a chunk ahead of the writes
//     (zeroChunk), which the write's own sync makes durable, so most syncs
//     write data into blocks that are already allocated and written, and
//     they are fdatasyncs, which skip the unchanged metadata.
//   - A raw probe on this project's ext4 machines, 64 records of 256 B per
//     sync: fallocate + fsync 349 us, growing the file 237 us, within zeros
//     written ahead 123 us.
//
// raft-wal reads a segment's unwritten tail as zeros either way, so the
// files are the same to it. The first sync of a new file also syncs its
// directory, as raft-wal's own file does, so a crash cannot lose the file.
type walFS struct{ *fs.FS }

// zeroChunk is how far ahead of the writes a segment file is zero-filled.
const zeroChunk = 256 << 10

var zeros [zeroChunk]byte

var _ types.VFS = walFS{}

func newWALFS() walFS { return walFS{fs.New()} }

// Create implements types.VFS. size is the segment's size limit: zeros are
// never written past it.
func (walFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	return &walFile{File: f, dir: dir, limit: int64(size), dirty: true}, nil
}

// OpenWriter implements types.VFS: an existing segment raft-wal goes on
// writing after a restart. Its zeroed part is taken to end where the file
// does.
func (walFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return &walFile{File: f, dir: dir, zeroed: st.Size()}, nil
}

// walFile is a segment file open for writing.
type walFile struct {
	*os.File
	dir    string
	limit  int64 // the segment's size limit; 0 when unknown
	zeroed int64 // the file's zero-filled (or written) part ends here
	dirty  bool  // created and its directory not yet synced
}

// WriteAt writes p at off after zero-filling the next chunk beyond it, if
// the writes have reached the end of the zeroed part. raft-wal writes each
// segment from its start and in order, from one goroutine.
func (f *walFile) WriteAt(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	if end > f.zeroed && (f.limit == 0 || end < f.limit) {
		n := int64(zeroChunk)
		if f.limit > 0 {
			n = min(n, f.limit-end)
		}
		if _, err := f.File.WriteAt(zeros[:n], end); err != nil {
			return 0, err
		}
		f.zeroed = end + n
	}
	f.zeroed = max(f.zeroed, end)
	return f.File.WriteAt(p, off)
}

// Sync makes the written data durable with fdatasync, which also persists
// the file's size when it grew; the first sync of a new file also syncs
// its directory.
func (f *walFile) Sync() error {
	if err := syncData(f.File); err != nil {
		return err
	}
	if f.dirty {
		d, err := os.Open(f.dir)
		if err != nil {
			return err
		}
		if err := errors.Join(d.Sync(), d.Close()); err != nil {
			return err
		}
		f.dirty = false
	}
	return nil
}
