package edge

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/cluster/bridge"
	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// fleetLimit only turns a hang into a failure; nothing asserts durations.
const fleetLimit = 3 * time.Minute

const fleetSize = 1000

func TestThousandSimulatedAgents(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("1,000 agents: skipped with -short outside CI")
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetLimit)
	defer cancel()

	cfg := bridge.DefaultConfig()
	cfg.Dispatch.AckTimeout = 2 * time.Second
	cfg.Dispatch.BackoffBase = 50 * time.Millisecond
	cfg.Dispatch.BackoffMax = time.Second
	cp, err := StartControlPlane(ctx, t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Close)

	passwords, err := cp.AddUnits(ctx, 0, fleetSize, 16)
	if err != nil {
		t.Fatal(err)
	}
	agents, err := ConnectFleet(ctx, cp, 0, passwords, 16, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { CloseFleet(agents) })

	head, err := cp.Store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	results := watchResults(ctx, cp.Store, head.Position+1)

	ids := make(map[string]int, fleetSize) // command id -> unit index
	deadline := time.Now().Add(time.Hour)
	for i := range fleetSize {
		ids[fmt.Sprintf("cmd-%s", UnitName(i))] = i
	}
	if err := Parallel(ctx, 16, fleetSize, func(i int) error {
		return cp.Issue(ctx, UnitName(i), "cmd-"+UnitName(i), deadline)
	}); err != nil {
		t.Fatal(err)
	}

	succeeded := make(map[string]int, fleetSize)
	for len(succeeded) < fleetSize {
		select {
		case r, ok := <-results:
			if !ok {
				t.Fatalf("log subscription ended after %d of %d results: %v", len(succeeded), fleetSize, ctx.Err())
			}
			if r.err != nil {
				t.Fatalf("log subscription: %v", r.err)
			}
			i, known := ids[r.id]
			if !known {
				t.Fatalf("result for unknown command %q in %s", r.id, r.stream)
			}
			if want := "unit-" + UnitName(i); r.stream != want {
				t.Fatalf("result of %s in %s, want %s", r.id, r.stream, want)
			}
			if r.typ != "logbook.v1.UnitCommandSucceeded" {
				t.Fatalf("command %s ended with %s", r.id, r.typ)
			}
			succeeded[r.id]++
			if succeeded[r.id] > 1 {
				t.Fatalf("command %s succeeded %d times", r.id, succeeded[r.id])
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d commands have a result after %v", len(succeeded), fleetSize, fleetLimit)
		}
	}

	var deliveries int64
	for i, a := range agents {
		if err := a.Err(); err != nil {
			t.Errorf("agent %s: %v", a.Name, err)
		}
		if n := a.BadSignatures(); n != 0 {
			t.Errorf("agent %s: %d commands failed signature verification", a.Name, n)
		}
		counts := a.ExecutionCounts()
		want := "cmd-" + UnitName(i)
		if len(counts) != 1 || counts[want] != 1 {
			t.Errorf("agent %s ran %v; want %s exactly once", a.Name, counts, want)
		}
		deliveries += a.Deliveries()
	}
	t.Logf("%d commands, each run once and succeeded; %d deliveries (%d redeliveries)", fleetSize, deliveries, deliveries-fleetSize)

	// The log agrees: exactly one finishing event per command, a success.
	for i := range fleetSize {
		stream := "unit-" + UnitName(i)
		finished := 0
		for ev, err := range cp.Store.ReadStream(ctx, stream, 1) {
			if err != nil {
				t.Fatalf("read %s: %v", stream, err)
			}
			switch ev.Type {
			case "logbook.v1.UnitCommandSucceeded", "logbook.v1.UnitCommandFailed", "logbook.v1.UnitCommandExpired":
				finished++
				if ev.Type != "logbook.v1.UnitCommandSucceeded" {
					t.Errorf("%s: %s", stream, ev.Type)
				}
			}
		}
		if finished != 1 {
			t.Errorf("%s: %d finishing events, want 1", stream, finished)
		}
	}
}

type result struct {
	stream, typ, id string
	err             error
}

// watchResults follows the unit category's command outcomes from position
// from.
func watchResults(ctx context.Context, st events.Store, from uint64) <-chan result {
	out := make(chan result, 1024)
	go func() {
		defer close(out)
		filter := events.Filter{Categories: []string{"unit"}, Types: []string{
			"logbook.v1.UnitCommandSucceeded", "logbook.v1.UnitCommandFailed", "logbook.v1.UnitCommandExpired",
		}}
		for ev, err := range st.Subscribe(ctx, from, filter) {
			if err != nil {
				if ctx.Err() == nil {
					out <- result{err: err}
				}
				return
			}
			r := result{stream: ev.Stream, typ: ev.Type}
			var m interface{ GetCommandId() string }
			switch ev.Type {
			case "logbook.v1.UnitCommandSucceeded":
				m = new(logbookv1.UnitCommandSucceeded)
			case "logbook.v1.UnitCommandFailed":
				m = new(logbookv1.UnitCommandFailed)
			default:
				m = new(logbookv1.UnitCommandExpired)
			}
			if err := proto.Unmarshal(ev.Data, m.(proto.Message)); err != nil {
				r.err = err
			}
			r.id = m.GetCommandId()
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
