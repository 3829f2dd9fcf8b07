package embedded

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/events"
)

// TestZZGroupProbe is a temporary measurement helper (removed before commit).
func TestZZGroupProbe(t *testing.T) {
	if os.Getenv("PROBE") == "" {
		t.Skip()
	}
	writers, _ := strconv.Atoi(os.Getenv("PROBE"))
	batch := 1
	if b := os.Getenv("PROBE_BATCH"); b != "" {
		batch, _ = strconv.Atoi(b)
	}
	// Reference: raw write+fdatasync of one group's bytes, back to back.
	f, err := os.Create(t.TempDir() + "/raw")
	if err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, 64*330)
	k, tr := 0, time.Now()
	for time.Since(tr) < 700*time.Millisecond {
		f.Write(rec)
		f.Sync()
		k++
	}
	rawUS := time.Since(tr).Seconds() * 1e6 / float64(k)
	f.Close()
	s := mustOpen(t, t.TempDir())
	defer s.Close()
	data := make([]byte, 256)
	var stop atomic.Bool
	var n atomic.Int64
	var wg sync.WaitGroup
	ctx := context.Background()
	var st0 Stats
	var t0 time.Time
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("bench-w%d", w)
			var v uint64
			evs := make([]events.Event, batch)
			for !stop.Load() {
				for i := range evs {
					evs[i] = events.Event{ID: events.NewID(), Type: "bench.v1.Payload", Data: data}
				}
				r, err := s.Append(ctx, stream, events.Exactly(v), evs...)
				if err != nil {
					t.Error(err)
					return
				}
				v = r.LastVersion
				n.Add(int64(batch))
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	st0, t0 = s.Stats(), time.Now()
	a0, b0, c0 := tmpSyncNs.Load(), tmpLingerNs.Load(), tmpWriteNs.Load()
	n0 := n.Load()
	time.Sleep(2 * time.Second)
	st1, el := s.Stats(), time.Since(t0)
	a1, b1, c1 := tmpSyncNs.Load(), tmpLingerNs.Load(), tmpWriteNs.Load()
	defer func() {
		sy := float64(st1.Syncs - st0.Syncs)
		fmt.Printf("PROBE   per cycle: sync %.0fus linger %.0fus write %.0fus\n", float64(a1-a0)/sy/1e3, float64(b1-b0)/sy/1e3, float64(c1-c0)/sy/1e3)
	}()
	n1 := n.Load()
	stop.Store(true)
	wg.Wait()
	ev := st1.Events - st0.Events
	sy := st1.Syncs - st0.Syncs
	fmt.Printf("PROBE writers=%d batch=%d events/s=%.0f events/sync=%.1f syncs/s=%.0f us/sync-cycle=%.0f (acked %d) raw-sync-us=%.0f\n",
		writers, batch, float64(ev)/el.Seconds(), float64(ev)/float64(sy), float64(sy)/el.Seconds(), el.Seconds()*1e6/float64(sy), n1-n0, rawUS)
}
