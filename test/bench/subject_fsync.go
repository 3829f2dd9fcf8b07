package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The fsync-limit subject: the physical limit of a durable append log on
// this machine. One goroutine appends recordsPerSync 256-byte records with a
// single write() (as a group commit would) and then syncs the file's data
// (fdatasync on Linux, see fdatasync_*.go). The file grows, like a log
// segment, so each sync also persists the new size. With W writers at most
// W records can share one sync, so records_per_sync=W bounds any store with
// W single-event writers.
func fsyncLimit(ctx context.Context, cfg *Config, recordsPerSync int) (LoadStats, error) {
	dir, err := cfg.TempDir("fsync-limit")
	if err != nil {
		return LoadStats{}, err
	}
	defer os.RemoveAll(dir)
	f, err := os.OpenFile(filepath.Join(dir, "records.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o644)
	if err != nil {
		return LoadStats{}, err
	}
	// A directory sync makes the new file itself durable, as a store does
	// when it creates a segment; it is outside the measurement.
	if err := syncDir(dir); err != nil {
		f.Close()
		return LoadStats{}, err
	}
	group := make([]byte, 0, recordsPerSync*payloadBytes)
	rec := payload(payloadBytes)
	for range recordsPerSync {
		group = append(group, rec...)
	}
	stats, err := RunLoad(ctx, Load{
		Writers: 1,
		PerCall: recordsPerSync,
		Warmup:  cfg.Warmup,
		Measure: cfg.Duration,
		NewOp: func(int) (Op, error) {
			return func(context.Context) error {
				if _, err := f.Write(group); err != nil {
					return err
				}
				if err := fdatasync(f); err != nil {
					return fmt.Errorf("fdatasync: %w", err)
				}
				return nil
			}, nil
		},
	})
	return stats, errors.Join(err, f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
