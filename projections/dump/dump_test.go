package dump

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/logbook-fleet/logbook/events"
)

var errCrash = errors.New("simulated crash")

// boundaryLog fills s with events around 2026-11-22 and returns the
// positions expected in that day's readings and audit dumps.
//
//	p1  unit-ship1       21 23:59:59.999
//	p2  readings-ship1   21 23:59:59.999
//	p3  readings-ship1   22 00:00:00.000
//	p4  unit-ship1       22 00:00:00.000
//	p5  readings-ship2   22 12:00:00
//	p6  channel-stable   22 23:59:59.999
//	p7  readings-ship1   22 23:59:59.999
//	p8  readings-ship1   23 00:00:00.000
//	p9  unit-ship1       23 00:00:00.000
//	p10 readings-ship2   23 00:10:00      (the head: completes day 22 by 10 minutes)
func boundaryLog(t *testing.T, s events.Store) (readings, audit []uint64) {
	t.Helper()
	MustAppend(t, s, "unit-ship1", at(21, 23, 59, 59, 999), reading("boot", 1))
	MustAppend(t, s, "readings-ship1", at(21, 23, 59, 59, 999), reading("speed", 1))
	MustAppend(t, s, "readings-ship1", at(22, 0, 0, 0, 0), reading("speed", 55.5))
	MustAppend(t, s, "unit-ship1", at(22, 0, 0, 0, 0), reading("labels", 2))
	MustAppend(t, s, "readings-ship2", at(22, 12, 0, 0, 0), reading("speed", 60.2))
	MustAppend(t, s, "channel-stable", at(22, 23, 59, 59, 999), reading("promote", 3))
	MustAppend(t, s, "readings-ship1", at(22, 23, 59, 59, 999), reading("speed", 61.9))
	MustAppend(t, s, "readings-ship1", at(23, 0, 0, 0, 0), reading("speed", 62))
	MustAppend(t, s, "unit-ship1", at(23, 0, 0, 0, 0), reading("labels", 4))
	MustAppend(t, s, "readings-ship2", at(23, 0, 10, 0, 0), reading("speed", 63))
	return []uint64{3, 5, 7}, []uint64{4, 6}
}

func TestRunWritesExactlyTheDaysEvents(t *testing.T) {
	for _, bk := range bucketKinds {
		t.Run(bk.name, func(t *testing.T) {
			ctx := t.Context()
			s := MustStore(t)
			wantReadings, wantAudit := boundaryLog(t, s)
			b := bk.open(t)
			d := MustDumper(t, s, b)
			day := at(22, 15, 0, 0, 0) // any time of the day names it

			res, err := d.Run(ctx, day)
			if err != nil {
				t.Fatal(err)
			}
			if res.Skipped || !res.Day.Equal(at(22, 0, 0, 0, 0)) {
				t.Fatalf("result %+v", res)
			}
			readings := MustLines(t, b, "readings/2026/11/22.ndjson.gz")
			audit := MustLines(t, b, "audit/2026/11/22.ndjson.gz")
			if got := positions(readings); !slices.Equal(got, wantReadings) {
				t.Errorf("readings positions %v, want %v", got, wantReadings)
			}
			if got := positions(audit); !slices.Equal(got, wantAudit) {
				t.Errorf("audit positions %v, want %v", got, wantAudit)
			}

			// Every field of a line comes from its event.
			evs := map[uint64]events.Event{}
			for e, err := range s.ReadAll(ctx, 1, events.Filter{}) {
				if err != nil {
					t.Fatal(err)
				}
				evs[e.Position] = e
			}
			for _, l := range readings {
				e := evs[l.Position]
				if l.Stream != e.Stream || l.Unit == nil || "readings-"+*l.Unit != e.Stream ||
					!l.Time.Equal(e.Time) || l.Type != "google.protobuf.Struct" || l.PayloadBase64 != nil {
					t.Errorf("readings line %+v does not match event %+v", l, e)
				}
			}
			if r := readings[0]; string(r.Payload) != `{"sensor":"speed","value":55.5}` {
				t.Errorf("payload %s", r.Payload)
			}
			for _, l := range audit {
				e := evs[l.Position]
				if l.Stream != e.Stream || l.Version != e.Version || l.ID != e.ID.String() || !l.Time.Equal(e.Time) ||
					l.Type != e.Type || l.Principal != "alice" || l.CorrelationID != "corr" || l.CausationID != "cause" ||
					l.Hash != e.Hash.String() || l.PrevHash != e.PrevHash.String() || l.Unit != nil || len(l.Payload) == 0 {
					t.Errorf("audit line %+v does not match event %+v", l, e)
				}
			}

			// The manifests describe the objects, and Verify agrees.
			for _, c := range []struct {
				m           Manifest
				kind        Kind
				want        []uint64
				first, last uint64
			}{{res.Readings, Readings, wantReadings, 3, 7}, {res.Audit, Audit, wantAudit, 4, 6}} {
				m := c.m
				if m.Kind != c.kind || m.Day != "2026-11-22" || m.Count != uint64(len(c.want)) || m.FirstPosition != c.first ||
					m.LastPosition != c.last || !m.Complete || m.Undecoded != 0 || m.Tolerance != "10m0s" {
					t.Errorf("%s manifest %+v", c.kind, m)
				}
				if sc := m.Scan; sc.From > 3 || sc.To != 10 || sc.Next != 8 || sc.HeadPosition != 10 || sc.OutOfOrder != 0 {
					t.Errorf("%s scan %+v", c.kind, sc)
				}
				stored, err := d.Manifest(ctx, c.kind, day)
				if err != nil {
					t.Fatal(err)
				}
				if stored.SHA256 != m.SHA256 || stored.Count != m.Count {
					t.Errorf("stored manifest %+v, returned %+v", stored, m)
				}
			}
			if err := d.Verify(ctx, day); err != nil {
				t.Fatal(err)
			}

			// The day before holds the two events at 23:59:59.999.
			res, err = d.Run(ctx, at(21, 0, 0, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if res.Readings.FirstPosition != 2 || res.Readings.Count != 1 || res.Audit.FirstPosition != 1 || res.Audit.Count != 1 {
				t.Errorf("day 21: readings %+v audit %+v", res.Readings, res.Audit)
			}
		})
	}
}

func TestRunTwiceIsANoOp(t *testing.T) {
	for _, bk := range bucketKinds {
		t.Run(bk.name, func(t *testing.T) {
			ctx := t.Context()
			s := MustStore(t)
			boundaryLog(t, s)
			b := bk.open(t)
			first, err := MustDumper(t, s, b).Run(ctx, at(22, 0, 0, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			attrs, err := b.Attributes(ctx, ObjectKey(Readings, first.Day))
			if err != nil {
				t.Fatal(err)
			}

			// A later run with another clock would stamp new manifests if it
			// wrote any.
			later := MustDumper(t, s, b, WithClock(func() time.Time { return testNow.Add(time.Hour) }))
			again, err := later.Run(ctx, at(22, 23, 0, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if !again.Skipped || !again.Audit.Created.Equal(testNow) || again.Readings.SHA256 != first.Readings.SHA256 {
				t.Fatalf("second run %+v, first %+v", again, first)
			}
			attrs2, err := b.Attributes(ctx, ObjectKey(Readings, first.Day))
			if err != nil {
				t.Fatal(err)
			}
			if !attrs2.ModTime.Equal(attrs.ModTime) || attrs2.MD5 != nil && string(attrs2.MD5) != string(attrs.MD5) {
				t.Errorf("object rewritten: %v then %v", attrs.ModTime, attrs2.ModTime)
			}
			// RunDue starts after the latest dumped day (22) and day 23 is
			// not complete: nothing to do. It leaves day 21 to Run.
			due, err := later.RunDue(ctx)
			if err != nil || len(due) != 0 {
				t.Fatalf("RunDue %+v, %v", due, err)
			}
		})
	}
}

func TestInterruptedRunIsRedone(t *testing.T) {
	for _, bk := range bucketKinds {
		t.Run(bk.name, func(t *testing.T) {
			ctx := t.Context()
			s := MustStore(t)
			boundaryLog(t, s)
			b := bk.open(t)
			day := at(22, 0, 0, 0, 0)

			// An earlier forced dump, during the day, left manifests that
			// say incomplete.
			during := WithClock(func() time.Time { return at(22, 23, 0, 0, 0) })
			if res, err := MustDumper(t, s, b, WithForce(), during).Run(ctx, day); err != nil || res.Audit.Complete {
				t.Fatalf("forced run: %+v, %v", res, err)
			}
			crashing := MustDumper(t, s, b)
			crashing.cfg.afterData = func(time.Time) error { return errCrash }
			if _, err := crashing.Run(ctx, day); !errors.Is(err, errCrash) {
				t.Fatalf("Run: %v, want the crash", err)
			}
			for _, k := range kinds {
				if ok, err := b.Exists(ctx, ObjectKey(k, day)); err != nil || !ok {
					t.Errorf("data object %s: exists %v, %v", k, ok, err)
				}
				if ok, err := b.Exists(ctx, ManifestKey(k, day)); err != nil || ok {
					t.Errorf("manifest %s left behind (exists %v, %v): the day would look dumped", k, ok, err)
				}
			}
			if err := crashing.Verify(ctx, day); !errors.Is(err, ErrNotDumped) {
				t.Errorf("Verify after crash: %v, want ErrNotDumped", err)
			}

			d := MustDumper(t, s, b)
			due, err := d.RunDue(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var days []string
			for _, r := range due {
				days = append(days, fmt.Sprintf("%s skipped=%v complete=%v", FormatDay(r.Day), r.Skipped, r.Audit.Complete))
			}
			want := []string{"2026-11-21 skipped=false complete=true", "2026-11-22 skipped=false complete=true"}
			if !slices.Equal(days, want) {
				t.Fatalf("RunDue: %q, want %q", days, want)
			}
			if err := d.Verify(ctx, day); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCancelledRunLeavesNoObject(t *testing.T) {
	for _, bk := range bucketKinds {
		t.Run(bk.name, func(t *testing.T) {
			s := MustStore(t)
			boundaryLog(t, s)
			b := bk.open(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			d := MustDumper(t, s, b, WithDecoder(func(e events.Event) ([]byte, error) {
				if e.Position == 5 {
					cancel()
				}
				return []byte(`{}`), nil
			}))
			if _, err := d.Run(ctx, at(22, 0, 0, 0, 0)); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run: %v, want context.Canceled", err)
			}
			if keys := listKeys(t, b); len(keys) != 0 {
				t.Errorf("a cancelled run left %q", keys)
			}
		})
	}
}

func listKeys(t *testing.T, b *blob.Bucket) []string {
	t.Helper()
	var keys []string
	it := b.List(nil)
	for {
		obj, err := it.Next(t.Context())
		if err != nil {
			break
		}
		keys = append(keys, obj.Key)
	}
	return keys
}

func TestIncompleteDay(t *testing.T) {
	ctx := t.Context()
	s := MustStore(t)
	boundaryLog(t, s)
	b := memblob.OpenBucket(nil)
	defer b.Close()

	// Day 23 has ended by the clock, but the log's head (23 00:10) is not
	// 10 minutes past its end.
	var ie *IncompleteError
	_, err := MustDumper(t, s, b).Run(ctx, at(23, 0, 0, 0, 0))
	if !errors.Is(err, ErrIncomplete) || !errors.As(err, &ie) || ie.HeadPosition != 10 || !ie.HeadTime.Equal(at(23, 0, 10, 0, 0)) {
		t.Fatalf("Run: %v", err)
	}
	// Day 22 is complete in the log, but not by a clock inside the day.
	during := MustDumper(t, s, b, WithClock(func() time.Time { return at(22, 23, 0, 0, 0) }))
	if _, err := during.Run(ctx, at(22, 0, 0, 0, 0)); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Run during the day: %v", err)
	}
	if due, err := during.RunDue(ctx); err != nil || len(due) != 1 || !due[0].Day.Equal(at(21, 0, 0, 0, 0)) {
		t.Fatalf("RunDue during day 22: %+v, %v", due, err)
	}
	if keys := listKeys(t, b); len(keys) != 4 {
		t.Fatalf("bucket holds %q, want day 21 only", keys)
	}

	// Forced: what is there so far, marked incomplete.
	forced, err := MustDumper(t, s, b, WithForce()).Run(ctx, at(23, 0, 0, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if forced.Audit.Complete || forced.Readings.Complete || forced.Readings.Count != 2 || forced.Audit.Count != 1 {
		t.Fatalf("forced: %+v", forced)
	}
	// A late event of day 23 arrives (within the tolerance), then the head
	// passes the day's end by the tolerance: the next run redoes the day.
	late := MustAppend(t, s, "readings-ship3", at(23, 23, 59, 0, 0), reading("speed", 1))
	MustAppend(t, s, "readings-ship3", at(24, 0, 2, 0, 0), reading("speed", 1))
	MustAppend(t, s, "unit-ship3", at(24, 0, 10, 0, 0), reading("x", 1))
	d := MustDumper(t, s, b)
	res, err := d.Run(ctx, at(23, 0, 0, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped || !res.Audit.Complete || res.Readings.Count != 3 || res.Readings.LastPosition != late {
		t.Fatalf("redo: %+v", res)
	}
	if again, err := d.Run(ctx, at(23, 0, 0, 0, 0)); err != nil || !again.Skipped {
		t.Fatalf("third run: %+v, %v", again, err)
	}
}

func TestPayloads(t *testing.T) {
	ctx := t.Context()
	s := MustStore(t)
	unknown := MustAppendRaw(t, s, "readings-ship1", at(22, 1, 0, 0, 0), "lada.v1.Reading", []byte{1, 2, 3})
	empty := MustAppendRaw(t, s, "readings-ship1", at(22, 2, 0, 0, 0), "lada.v1.Reading", nil)
	broken := MustAppendRaw(t, s, "unit-ship1", at(22, 3, 0, 0, 0), "google.protobuf.Struct", []byte{0xff})
	known := MustAppend(t, s, "unit-ship1", at(22, 4, 0, 0, 0), reading("a<b&c", 1))
	MustAppend(t, s, "unit-ship1", at(23, 4, 0, 0, 0), reading("end", 1))

	b := memblob.OpenBucket(nil)
	defer b.Close()
	res, err := MustDumper(t, s, b).Run(ctx, at(22, 0, 0, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Readings.Undecoded != 2 || res.Audit.Undecoded != 1 {
		t.Errorf("undecoded: readings %d, audit %d", res.Readings.Undecoded, res.Audit.Undecoded)
	}
	byPos := map[uint64]line{}
	for _, key := range []string{ObjectKey(Readings, res.Day), ObjectKey(Audit, res.Day)} {
		for _, l := range MustLines(t, b, key) {
			byPos[l.Position] = l
		}
	}
	check := func(pos uint64, payload, base64 string, wantErr bool) {
		t.Helper()
		l := byPos[pos]
		gotB64 := "<none>"
		if l.PayloadBase64 != nil {
			gotB64 = *l.PayloadBase64
		}
		if string(l.Payload) != payload || gotB64 != base64 || (l.PayloadError != "") != wantErr {
			t.Errorf("position %d: payload %s, payload_base64 %s, payload_error %q", pos, l.Payload, gotB64, l.PayloadError)
		}
	}
	check(unknown, "", "AQID", false)
	check(empty, "", "", false) // an empty payload of an unknown type is "payload_base64":""
	check(broken, "", "/w==", true)
	check(known, `{"sensor":"a<b&c","value":1}`, "<none>", false)

	// Without a decoder every payload is raw.
	b2 := memblob.OpenBucket(nil)
	defer b2.Close()
	raw, err := New(s, b2, WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	res, err = raw.Run(ctx, at(22, 0, 0, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Audit.Undecoded != res.Audit.Count || res.Readings.Undecoded != res.Readings.Count {
		t.Errorf("raw dumper decoded something: %+v", res)
	}
}

// TestSkewAroundMidnight: an event stamped a little before an event committed
// earlier (within the tolerance) lands in its own day's dump, and the next
// day's scan starts at the first event of that day.
func TestSkewAroundMidnight(t *testing.T) {
	ctx := t.Context()
	s := MustStore(t)
	MustAppend(t, s, "unit-ship1", at(22, 23, 58, 0, 0), reading("a", 1))      // p1
	MustAppend(t, s, "readings-ship1", at(23, 0, 1, 0, 0), reading("b", 1))    // p2: day 23
	MustAppend(t, s, "readings-ship2", at(22, 23, 59, 30, 0), reading("c", 1)) // p3: day 22, committed late
	MustAppend(t, s, "unit-ship2", at(23, 0, 11, 0, 0), reading("d", 1))       // p4: completes day 22
	MustAppend(t, s, "readings-ship1", at(23, 23, 55, 0, 0), reading("e", 1))  // p5
	MustAppend(t, s, "readings-ship1", at(24, 0, 30, 0, 0), reading("f", 1))   // p6: completes day 23

	b := memblob.OpenBucket(nil)
	defer b.Close()
	d := MustDumper(t, s, b)
	due, err := d.RunDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2][]uint64{}
	for _, r := range due {
		got[FormatDay(r.Day)] = [2][]uint64{
			positions(MustLines(t, b, ObjectKey(Readings, r.Day))),
			positions(MustLines(t, b, ObjectKey(Audit, r.Day))),
		}
	}
	want := map[string][2][]uint64{
		"2026-11-22": {{3}, {1}},
		"2026-11-23": {{2, 5}, {4}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dumps %v, want %v", got, want)
	}
	if next := due[0].Audit.Scan.Next; next != 2 {
		t.Errorf("day 22 cursor %d, want 2", next)
	}
	if next := due[1].Audit.Scan.Next; next != 6 {
		t.Errorf("day 23 cursor %d, want 6", next)
	}
	// p7 breaks the ordering assumption: it is stamped in day 23, 31
	// minutes before p6, and committed after day 23 was dumped. Day 24's
	// scan reports it.
	MustAppend(t, s, "readings-ship1", at(23, 23, 59, 0, 0), reading("late", 1)) // p7
	MustAppend(t, s, "unit-ship1", at(25, 1, 0, 0, 0), reading("g", 1))          // p8
	res, err := d.Run(ctx, at(24, 0, 0, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Audit.Scan.OutOfOrder != 1 || res.Readings.Count != 1 {
		t.Errorf("day 24: %+v", res)
	}
}

// TestRandomLogs checks, over logs whose times jitter within the tolerance,
// that every day's dump holds exactly the events stamped in that day, whether
// the scan starts from the previous day's cursor (RunDue) or from a binary
// search (Run on a fresh bucket), and that both give the same bytes.
func TestRandomLogs(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			ctx := t.Context()
			rng := rand.New(rand.NewPCG(seed, 42))
			s := MustStore(t)
			tol := 10 * time.Minute
			base := at(20, 22, 0, 0, 0)
			streams := []string{"readings-a", "readings-b", "unit-a", "channel-stable", "readings-c"}
			byDay := map[string][]uint64{}
			for i := range 1500 {
				// Mostly a few minutes apart, sometimes a quiet day; stamped up
				// to the tolerance early.
				step := time.Duration(rng.IntN(8)) * time.Minute
				if i%300 == 299 {
					step = 30 * time.Hour
				}
				base = base.Add(step)
				ts := base.Add(-time.Duration(rng.Int64N(int64(tol))))
				stream := streams[rng.IntN(len(streams))]
				pos := MustAppendRaw(t, s, stream, ts, "x.Y", []byte{byte(i)})
				byDay[FormatDay(ts)] = append(byDay[FormatDay(ts)], pos)
			}
			b := memblob.OpenBucket(nil)
			defer b.Close()
			due, err := MustDumper(t, s, b, WithTolerance(tol)).RunDue(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(due) < 5 {
				t.Fatalf("RunDue dumped %d days", len(due))
			}
			for i, r := range due {
				if i > 0 && !r.Day.Equal(due[i-1].Day.AddDate(0, 0, 1)) {
					t.Fatalf("RunDue skipped from %s to %s", FormatDay(due[i-1].Day), FormatDay(r.Day))
				}
				got := append(positions(MustLines(t, b, ObjectKey(Readings, r.Day))),
					positions(MustLines(t, b, ObjectKey(Audit, r.Day)))...)
				slices.Sort(got)
				if want := byDay[FormatDay(r.Day)]; !slices.Equal(got, want) {
					t.Fatalf("day %s: got %v, want %v", FormatDay(r.Day), got, want)
				}
				if r.Audit.Scan.OutOfOrder != 0 {
					t.Errorf("day %s: %d out of order", FormatDay(r.Day), r.Audit.Scan.OutOfOrder)
				}
				// A fresh bucket: no previous manifest, so a binary search.
				fresh := memblob.OpenBucket(nil)
				res, err := MustDumper(t, s, fresh, WithTolerance(tol)).Run(ctx, r.Day)
				_ = fresh.Close()
				if err != nil {
					t.Fatal(err)
				}
				if res.Readings.SHA256 != r.Readings.SHA256 || res.Audit.SHA256 != r.Audit.SHA256 {
					t.Errorf("day %s: binary search start %d gives other content than cursor %d",
						FormatDay(r.Day), res.Audit.Scan.From, r.Audit.Scan.From)
				}
			}
		})
	}
}

func TestRunDue(t *testing.T) {
	ctx := t.Context()
	s := MustStore(t)
	b := memblob.OpenBucket(nil)
	defer b.Close()
	d := MustDumper(t, s, b)
	if due, err := d.RunDue(ctx); err != nil || len(due) != 0 {
		t.Fatalf("RunDue on an empty log: %+v, %v", due, err)
	}

	MustAppend(t, s, "readings-a", at(20, 10, 0, 0, 0), reading("x", 1))
	MustAppend(t, s, "unit-a", at(21, 10, 0, 0, 0), reading("x", 1))
	// 22 and 23 are quiet.
	MustAppend(t, s, "readings-a", at(24, 10, 0, 0, 0), reading("x", 1))
	due, err := d.RunDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range due {
		got = append(got, fmt.Sprintf("%s:%d+%d", FormatDay(r.Day), r.Readings.Count, r.Audit.Count))
	}
	want := []string{"2026-11-20:1+0", "2026-11-21:0+1", "2026-11-22:0+0", "2026-11-23:0+0"}
	if !slices.Equal(got, want) {
		t.Fatalf("RunDue: %q, want %q", got, want)
	}
	if again, err := d.RunDue(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second RunDue: %+v, %v", again, err)
	}

	// With WithForce, up to the day of the last event, marked incomplete.
	forced, err := MustDumper(t, s, b, WithForce()).RunDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(forced) != 1 || FormatDay(forced[0].Day) != "2026-11-24" || forced[0].Audit.Complete {
		t.Fatalf("forced RunDue: %+v", forced)
	}
	// The next month: RunDue redoes the forced day and walks on across
	// the month boundary.
	MustAppend(t, s, "readings-a", at(30, 23, 0, 0, 0), reading("x", 1))
	MustAppend(t, s, "readings-a", time.Date(2026, 12, 1, 0, 30, 0, 0, time.UTC), reading("x", 1))
	MustAppend(t, s, "readings-a", time.Date(2026, 12, 2, 0, 30, 0, 0, time.UTC), reading("x", 1))
	due, err = d.RunDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, r := range due {
		got = append(got, FormatDay(r.Day))
	}
	if want := []string{"2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01"}; !slices.Equal(got, want) {
		t.Fatalf("RunDue: %q, want %q", got, want)
	}
	if latest, ok, err := latestManifestDay(ctx, b, Audit); err != nil || !ok || FormatDay(latest) != "2026-12-01" {
		t.Fatalf("latest manifest: %v %v %v", latest, ok, err)
	}
}

func TestLatestManifestDaySkipsLevelsWithoutManifests(t *testing.T) {
	ctx := t.Context()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	put := func(key string) {
		if err := b.WriteAll(ctx, key, []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := latestManifestDay(ctx, b, Audit); ok || err != nil {
		t.Fatalf("empty bucket: %v %v", ok, err)
	}
	put("audit/2026/11/30.manifest.json")
	put("audit/2026/11/04.manifest.json")
	put("audit/2026/12/01.ndjson.gz") // an interrupted run
	put("audit/2027/xx/01.manifest.json")
	put("audit/2026/11/31.manifest.json") // no such day
	put("readings/2026/12/01.manifest.json")
	day, ok, err := latestManifestDay(ctx, b, Audit)
	if err != nil || !ok || FormatDay(day) != "2026-11-30" {
		t.Fatalf("latest: %v %v %v", day, ok, err)
	}
}

func TestBadManifestStopsTheDump(t *testing.T) {
	ctx := t.Context()
	s := MustStore(t)
	boundaryLog(t, s)
	b := memblob.OpenBucket(nil)
	defer b.Close()
	if err := b.WriteAll(ctx, ManifestKey(Audit, at(22, 0, 0, 0, 0)), []byte(`{"format":1}`), nil); err != nil {
		t.Fatal(err)
	}
	d := MustDumper(t, s, b)
	if _, err := d.Run(ctx, at(22, 0, 0, 0, 0)); !errors.Is(err, ErrInvalidManifest) {
		t.Errorf("Run: %v, want ErrInvalidManifest", err)
	}
	if _, err := d.RunDue(ctx); !errors.Is(err, ErrInvalidManifest) {
		t.Errorf("RunDue: %v, want ErrInvalidManifest", err)
	}
	// A manifest stored under another day's key.
	res, err := d.Run(ctx, at(21, 0, 0, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	data, err := EncodeManifest(res.Audit)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteAll(ctx, ManifestKey(Audit, at(22, 0, 0, 0, 0)), data, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Run(ctx, at(22, 0, 0, 0, 0)); !errors.Is(err, ErrInvalidManifest) {
		t.Errorf("Run with a misplaced manifest: %v, want ErrInvalidManifest", err)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	ctx := t.Context()
	s := MustStore(t)
	boundaryLog(t, s)
	b := memblob.OpenBucket(nil)
	defer b.Close()
	d := MustDumper(t, s, b)
	day := at(22, 0, 0, 0, 0)
	if err := d.Verify(ctx, day); !errors.Is(err, ErrNotDumped) {
		t.Fatalf("Verify before the dump: %v", err)
	}
	if _, err := d.Run(ctx, day); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteAll(ctx, ObjectKey(Readings, day), []byte("not gzip"), nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Verify(ctx, day); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Verify: %v, want ErrMismatch", err)
	}
	// The size no longer matches the manifest: the day is redone.
	res, err := d.Run(ctx, day)
	if err != nil || res.Skipped {
		t.Fatalf("Run after tampering: %+v, %v", res, err)
	}
	if err := d.Verify(ctx, day); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, ObjectKey(Audit, day)); err != nil {
		t.Fatal(err)
	}
	if err := d.Verify(ctx, day); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Verify with a missing object: %v, want ErrMismatch", err)
	}
}

func TestOpen(t *testing.T) {
	ctx := t.Context()
	s := MustStore(t)
	for _, c := range []struct {
		name, url string
	}{
		{"unknown scheme", "nope://bucket"},
		{"malformed", "://what"},
		{"missing directory", fileURL(t.TempDir() + "/missing")},
		{"bad query", "file:///tmp?bogus=1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := Open(ctx, s, c.url)
			if !errors.Is(err, ErrBucket) {
				t.Fatalf("Open(%q) = %v, %v; want ErrBucket", c.url, d, err)
			}
		})
	}
	if _, err := Open(ctx, s, "mem://", WithTolerance(-time.Second), WithClock(nil)); err == nil || errors.Is(err, ErrBucket) ||
		!strings.Contains(err.Error(), "WithTolerance") || !strings.Contains(err.Error(), "WithClock") {
		t.Errorf("bad options: %v", err)
	}
	// A password in the URL stays out of errors.
	if _, err := Open(ctx, s, "nope://user:secret@host/b"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("error shows the password: %v", err)
	}

	boundaryLog(t, s)
	dir := t.TempDir()
	d, err := Open(ctx, s, fileURL(dir), WithClock(func() time.Time { return testNow }),
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	due, err := d.RunDue(ctx)
	if err != nil || len(due) != 2 {
		t.Fatalf("RunDue: %+v, %v", due, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestLinesAreValidJSONWithAwkwardStrings: metadata is free text.
func TestLinesAreValidJSONWithAwkwardStrings(t *testing.T) {
	ctx := t.Context()
	s := MustStore(t)
	md := events.Metadata{Principal: "bob\n\"<x>\"\u2028\x01", CorrelationID: "ü", CausationID: `\`}
	e, err := events.NewEvent(reading("s", 1), md)
	if err != nil {
		t.Fatal(err)
	}
	e.Time = at(22, 1, 0, 0, 0)
	mustAppendEvent(t, s, "unit-ß.x", e)
	MustAppend(t, s, "unit-a", at(23, 1, 0, 0, 0), reading("s", 1))
	b := memblob.OpenBucket(nil)
	defer b.Close()
	if _, err := MustDumper(t, s, b).Run(ctx, at(22, 0, 0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	ls := MustLines(t, b, ObjectKey(Audit, at(22, 0, 0, 0, 0)))
	if len(ls) != 1 || ls[0].Principal != md.Principal || ls[0].CorrelationID != md.CorrelationID ||
		ls[0].CausationID != md.CausationID || ls[0].Stream != "unit-ß.x" {
		t.Fatalf("lines %+v", ls)
	}
}
