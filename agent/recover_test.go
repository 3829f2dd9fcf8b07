package agent

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// TestRestartSettlesLeftoverCommands leaves the command log as a crash
// would: one command started without a result, one stored but not started,
// one stored whose deadline passed meanwhile, one whose result reached the
// spool but not the command log.
func TestRestartSettlesLeftoverCommands(t *testing.T) {
	cp := newFakeCP(t)
	cp.startResponder()
	dir := t.TempDir()
	runs := filepath.Join(t.TempDir(), "runs")
	a := mustOpen(t, testConfig(t, cp, dir))
	// A result spooled just before the "crash".
	spooledResult := &logbookv1.AgentCommandResult{CommandId: "spooled", ExitCode: 0, Output: []byte("done")}
	head := a.Spool().Head()
	if _, err := a.Emit(context.Background(), "shellcommand", "sh", spooledResult); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "spooled result delivered", func() bool { return a.Spool().Backlog() == 0 })
	mustClose(t, a)

	ctx := context.Background()
	log, err := embedded.Open(ctx, filepath.Join(dir, "commands"))
	if err != nil {
		t.Fatal(err)
	}
	store := func(c *logbookv1.EdgeCommand, started bool, spoolHead uint64) {
		data, _ := proto.Marshal(c)
		evs := []events.Event{{ID: events.NewID(), Type: commandType, Data: data}}
		if started {
			m, _ := json.Marshal(commandStarted{StartedAt: time.Now(), SpoolHead: spoolHead})
			evs = append(evs, events.Event{ID: events.NewID(), Type: commandStartedType, Data: m})
		}
		if _, err := log.Append(ctx, streamOf(c.GetCommandId()), events.NoStream, evs...); err != nil {
			t.Fatal(err)
		}
	}
	script := "echo run >> " + runs
	store(cp.command("was-running", "shellcommand", "sh", "-c", script), true, 0)
	store(cp.command("not-started", "shellcommand", "sh", "-c", script), false, 0)
	expired := cp.command("expired", "shellcommand", "sh", "-c", script)
	expired.Deadline = timestamppb.New(time.Now().Add(-time.Minute))
	expired.Sign(cp.key)
	store(expired, false, 0)
	store(cp.command("spooled", "shellcommand", "sh", "-c", script), true, head)
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t, cp, dir)
	cfg.Token = ""
	a = mustOpen(t, cfg)
	if r := cp.waitResult("was-running"); r.GetError() != errRestartedWhileRunning || r.GetExitCode() != -1 {
		t.Fatalf("was-running: %v", r)
	}
	if r := cp.waitResult("not-started"); r.GetExitCode() != 0 || r.GetError() != "" {
		t.Fatalf("not-started: %v", r)
	}
	if r := cp.waitRefusal("expired"); !strings.Contains(r.GetReason(), "deadline passed") {
		t.Fatalf("expired: %v", r)
	}
	// Redelivery of a settled command is acked and not run.
	if ack := cp.send(cp.command("was-running", "shellcommand", "sh", "-c", script)); !ack.GetStored() {
		t.Fatalf("ack %v", ack)
	}
	cp.send(cp.command("barrier", "shellcommand", "sh", "-c", "true"))
	cp.waitResult("barrier")
	if n := lines(t, runs); n != 1 {
		t.Fatalf("%d runs, want 1 (not-started only)", n)
	}
	count := map[string]int{}
	for _, r := range results(cp) {
		count[r.GetCommandId()]++
	}
	if count["spooled"] != 1 || count["was-running"] != 1 {
		t.Fatalf("results per command: %v", count)
	}

	// Everything is settled: another restart reports nothing new.
	mustClose(t, a)
	before := len(cp.events())
	a = mustOpen(t, cfg)
	cp.send(cp.command("barrier-2", "shellcommand", "sh", "-c", "true"))
	cp.waitResult("barrier-2")
	if got := len(cp.events()); got != before+1 {
		t.Fatalf("%d new events after a clean restart, want 1", got-before)
	}
}
