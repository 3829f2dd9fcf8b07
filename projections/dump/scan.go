package dump

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/logbook-fleet/logbook/events"
)

// scan reads the log from position from and streams the events of day into
// the two data objects. It stops at the first event stamped Tolerance or
// more after the day's end (sawEnd) or after head. It returns the two
// manifests without Complete and Created, which run fills in.
//
// Under the ordering assumption (no event is stamped more than Tolerance
// before an event committed earlier), no event after the stopping one
// belongs to the day, and none before from does (see startPosition).
func (d *Dumper) scan(ctx context.Context, day time.Time, from uint64, head events.Head, headTime time.Time,
	log *slog.Logger) (ms map[Kind]Manifest, sawEnd bool, err error) {
	end := day.AddDate(0, 0, 1)
	stopAt := end.Add(d.cfg.tolerance)
	writers := make(map[Kind]*objectWriter, len(kinds))
	defer func() {
		if err != nil {
			for _, w := range writers {
				w.abort()
			}
		}
	}()
	for _, k := range kinds {
		w, err := newObjectWriter(ctx, d.bucket, k, day)
		if err != nil {
			return nil, false, err
		}
		writers[k] = w
	}

	enc := newLineEncoder(d.cfg.decoder)
	scan := Scan{From: from, To: from - 1, HeadPosition: head.Position, HeadTime: headTime}
	var maxTime time.Time
	var decodeErrs uint64
	for e, err := range d.store.ReadAll(ctx, from, events.Filter{}) {
		if err != nil {
			return nil, false, fmt.Errorf("dump %s: read the log at position %d: %w", FormatDay(day), scan.To+1, err)
		}
		if e.Position > head.Position {
			break
		}
		scan.To = e.Position
		if n := e.Position - from + 1; n%progressEvery == 0 {
			log.Info("dump: progress", "position", e.Position, "head", head.Position,
				"readings", writers[Readings].count, "audit", writers[Audit].count)
		}
		if e.Time.Before(maxTime.Add(-d.cfg.tolerance)) {
			scan.OutOfOrder++
		}
		if e.Time.After(maxTime) {
			maxTime = e.Time
		}
		if !e.Time.Before(end) && scan.Next == 0 {
			scan.Next = e.Position
		}
		if !e.Time.Before(stopAt) {
			sawEnd = true
			break
		}
		if e.Time.Before(day) || !e.Time.Before(end) {
			continue
		}
		k := Audit
		if events.Category(e.Stream) == ReadingsCategory {
			k = Readings
		}
		line, undecoded, decodeErr, err := enc.line(k, e)
		if err != nil {
			return nil, false, err
		}
		if decodeErr != nil {
			decodeErrs++
			if decodeErrs <= 10 {
				log.Warn("dump: payload written as base64", "position", e.Position, "type", e.Type, "err", decodeErr)
			}
		}
		if err := writers[k].write(line, e.Position, undecoded); err != nil {
			return nil, false, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if scan.Next == 0 {
		scan.Next = scan.To + 1
	}
	ms = make(map[Kind]Manifest, len(kinds))
	for _, k := range kinds {
		if err := writers[k].finish(); err != nil {
			return nil, false, err
		}
		m := writers[k].manifest(day)
		m.Tolerance = d.cfg.tolerance.String()
		m.Scan = scan
		ms[k] = m
	}
	if decodeErrs > 10 {
		log.Warn("dump: more payloads written as base64", "count", decodeErrs-10)
	}
	return ms, sawEnd, nil
}

// head returns the log's head and the time of its event (zero for an empty
// log).
func (d *Dumper) head(ctx context.Context) (events.Head, time.Time, error) {
	h, err := d.store.Head(ctx)
	if err != nil {
		return events.Head{}, time.Time{}, fmt.Errorf("dump: read the log's head: %w", err)
	}
	if h.Position == 0 {
		return h, time.Time{}, nil
	}
	t, err := d.timeAt(ctx, h.Position)
	return h, t, err
}

// errNoEvent: a position at or below the head held no event.
var errNoEvent = errors.New("no event at a position below the head")

// timeAt returns the time of the event at pos, which must be in the log.
func (d *Dumper) timeAt(ctx context.Context, pos uint64) (time.Time, error) {
	for e, err := range d.store.ReadAll(ctx, pos, events.Filter{}) {
		if err != nil {
			return time.Time{}, fmt.Errorf("dump: read the log at position %d: %w", pos, err)
		}
		return e.Time, nil
	}
	return time.Time{}, fmt.Errorf("dump: read the log at position %d: %w", pos, errNoEvent)
}

// startPosition returns a position from which a scan sees every event of
// day: where the previous day's scan stopped, if that day is dumped, or else
// a position p found by binary search with p = 1 or time(p) < day -
// Tolerance. Under the ordering assumption every event before such a p is
// stamped before time(p) + Tolerance, so before the day starts. The search
// reads about log2(head) single events.
func (d *Dumper) startPosition(ctx context.Context, day time.Time, head events.Head) (uint64, error) {
	prev, ok, err := readManifest(ctx, d.bucket, ManifestKey(Audit, day.AddDate(0, 0, -1)))
	if err != nil {
		return 0, err
	}
	if ok {
		return prev.Scan.Next, nil
	}
	target := day.Add(-d.cfg.tolerance)
	lo, hi := uint64(1), head.Position+1 // lo is safe; hi is past the head or stamped >= target
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		t, err := d.timeAt(ctx, mid)
		if err != nil {
			return 0, err
		}
		if t.Before(target) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}
