package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func syslogLines(cp *fakeCP) []string {
	var out []string
	for _, l := range payloads(cp, func() *logbookv1.AgentSyslogLine { return new(logbookv1.AgentSyslogLine) }) {
		out = append(out, l.GetLine())
	}
	return out
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestSyslogForwarding(t *testing.T) {
	cp := newFakeCP(t)
	cp.startResponder()
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, logPath, "before start\n")
	cfg := testConfig(t, cp, dir)
	cfg.Syslog = map[string]string{"app": logPath}
	a := mustOpen(t, cfg)

	var want []string
	expect := func(what string, ls ...string) {
		t.Helper()
		want = append(want, ls...)
		waitFor(t, what, func() bool { return len(syslogLines(cp)) >= len(want) })
		if got := syslogLines(cp); !slices.Equal(got, want) {
			t.Fatalf("%s: forwarded %q, want %q", what, got, want)
		}
	}
	start := func(id string) {
		t.Helper()
		cp.send(cp.command(id, "syslogforwarding", "app", "start"))
		if r := cp.waitResult(id); r.GetExitCode() != 0 {
			t.Fatalf("start: %v", r)
		}
	}
	start("start-1")
	appendFile(t, logPath, "one\ntwo\n")
	expect("appends", "one", "two")
	appendFile(t, logPath, "par")
	appendFile(t, logPath, "tial\n")
	expect("a line written in two parts", "partial")

	// Rotation: rename, a last line into the old file, then a new file.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, logPath+".1", "three\n")
	appendFile(t, logPath, "four\n")
	expect("rotation", "three", "four")

	// Truncation in place (copytruncate).
	appendFile(t, logPath, "five is a longer line than what follows\n")
	expect("before truncation", "five is a longer line than what follows")
	if err := os.Truncate(logPath, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, logPath, "six\n")
	expect("truncation", "six")

	// A restart resumes at the saved position.
	mustClose(t, a)
	appendFile(t, logPath, "seven\n")
	cfg.Token = ""
	mustOpen(t, cfg)
	expect("after restart", "seven")

	// Stopped: lines are not forwarded; started again: from the end.
	cp.send(cp.command("stop-1", "syslogforwarding", "app", "stop"))
	cp.waitResult("stop-1")
	appendFile(t, logPath, "while stopped\n")
	start("start-2")
	appendFile(t, logPath, "eight\n")
	expect("after stop and start", "eight")

	ack := cp.send(cp.command("unknown-log", "syslogforwarding", "nginx", "start"))
	if !strings.Contains(ack.GetRefusal(), "no log named") {
		t.Fatalf("unknown log: ack %v", ack)
	}
}

func TestConfigApplied(t *testing.T) {
	cp := newFakeCP(t)
	cp.startResponder()
	dir := t.TempDir()
	mustOpen(t, testConfig(t, cp, dir))
	for i, flag := range []bool{true, false} {
		c := cp.command(fmt.Sprintf("cfg-%d", i), "config", "main")
		c.Payload = fmt.Appendf(nil, `{"config": {"log_level": "debug", "round": "%d"}, "feature_flags": {"new_ui": %v}}`, i, flag)
		c.Sign(cp.key)
		if ack := cp.send(c); !ack.GetStored() {
			t.Fatalf("ack %v", ack)
		}
		r := cp.waitResult(c.GetCommandId())
		if r.GetExitCode() != 0 || !strings.Contains(string(r.GetOutput()), "sha256:") {
			t.Fatalf("result %v", r)
		}
		var got AppliedConfig
		if err := readJSON(filepath.Join(dir, "config", "main.json"), &got); err != nil {
			t.Fatal(err)
		}
		if got.CommandID != c.GetCommandId() || got.Config["round"] != fmt.Sprint(i) || got.FeatureFlags["new_ui"] != flag {
			t.Fatalf("applied %+v", got)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "config"))
	if len(entries) != 1 {
		t.Fatalf("config dir holds %d files (temporary files left?)", len(entries))
	}
	c := cp.command("cfg-bad", "config", "main")
	c.Payload = []byte(`{"config": {"x": 1}}`)
	c.Sign(cp.key)
	if ack := cp.send(c); !strings.Contains(ack.GetRefusal(), "bad payload") {
		t.Fatalf("bad payload: ack %v", ack)
	}
}

// processReports returns the status reports of process name.
func processReports(cp *fakeCP, name string) []*logbookv1.ReportProcessStatus {
	var out []*logbookv1.ReportProcessStatus
	for _, e := range cp.events() {
		if e.GetMethod() != processMethodName || e.GetDomain() != name || e.GetType() != "logbook.v1.ReportProcessStatus" {
			continue
		}
		var r logbookv1.ReportProcessStatus
		if err := proto.Unmarshal(e.GetData(), &r); err != nil {
			panic(err)
		}
		out = append(out, &r)
	}
	return out
}

func lastStatus(cp *fakeCP, name string) (logbookv1.ProcessStatus, *logbookv1.ReportProcessStatus) {
	rs := processReports(cp, name)
	if len(rs) == 0 {
		return 0, nil
	}
	return rs[len(rs)-1].GetStatus(), rs[len(rs)-1]
}

func (cp *fakeCP) process(t *testing.T, id, name, payload string) {
	t.Helper()
	c := cp.command(id, processMethodName, name)
	c.Payload = []byte(payload)
	c.Sign(cp.key)
	if ack := cp.send(c); !ack.GetStored() {
		t.Fatalf("%s: ack %v", id, ack)
	}
	if r := cp.waitResult(id); r.GetExitCode() != 0 {
		t.Fatalf("%s: result %v", id, r)
	}
}

func TestProcessSupervision(t *testing.T) {
	cp := newFakeCP(t)
	cp.startResponder()
	dir := t.TempDir()
	cfg := testConfig(t, cp, dir)
	a := mustOpen(t, cfg)
	outer := t
	tmp := t.TempDir()
	const (
		running = logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING
		backoff = logbookv1.ProcessStatus_PROCESS_STATUS_BACKOFF
		stopped = logbookv1.ProcessStatus_PROCESS_STATUS_STOPPED
		failed  = logbookv1.ProcessStatus_PROCESS_STATUS_FAILED
	)
	cmdJSON := func(script string) string {
		b, _ := json.Marshal([]string{"sh", "-c", script})
		return string(b)
	}

	t.Run("on-failure restarts a failing process with back-off", func(t *testing.T) {
		runs := filepath.Join(tmp, "crashy")
		cp.process(t, "p1", "crashy", `{"desired":"running","restart":"on-failure","command":`+cmdJSON("echo x >> "+runs+"; exit 2")+`}`)
		waitFor(t, "three restarts", func() bool {
			s, r := lastStatus(cp, "crashy")
			return s == backoff && r.GetRestartCount() >= 3 && r.GetExitCode() == 2
		})
		cp.process(t, "p2", "crashy", `{"desired":"stopped"}`)
		waitFor(t, "stopped", func() bool { s, _ := lastStatus(cp, "crashy"); return s == stopped })
		n := lines(t, runs)
		if n < 3 {
			t.Fatalf("ran %d times", n)
		}
	})

	t.Run("never leaves a failed process failed", func(t *testing.T) {
		runs := filepath.Join(tmp, "once")
		cp.process(t, "p3", "once", `{"desired":"running","restart":"never","command":`+cmdJSON("echo x >> "+runs+"; exit 1")+`}`)
		waitFor(t, "failed", func() bool { s, _ := lastStatus(cp, "once"); return s == failed })
		// A later command's result is a barrier for any restart.
		cp.process(t, "p4", "other", `{"desired":"stopped"}`)
		if n := lines(t, runs); n != 1 {
			t.Fatalf("ran %d times, want 1", n)
		}
		// A new "running" command starts it again.
		cp.process(t, "p5", "once", `{"desired":"running"}`)
		waitFor(t, "second run", func() bool { return lines(t, runs) == 2 })
	})

	t.Run("on-failure does not restart a clean exit; always does", func(t *testing.T) {
		runs := filepath.Join(tmp, "clean")
		cp.process(t, "p6", "clean", `{"desired":"running","command":`+cmdJSON("echo x >> "+runs+"; exit 0")+`}`)
		waitFor(t, "stopped", func() bool {
			s, r := lastStatus(cp, "clean")
			return s == stopped && strings.Contains(r.GetDetail(), "exited")
		})
		if n := lines(t, runs); n != 1 {
			t.Fatalf("ran %d times, want 1", n)
		}
		cp.process(t, "p7", "clean", `{"restart":"always"}`)
		waitFor(t, "restarts", func() bool { return lines(t, runs) >= 3 })
		cp.process(t, "p8", "clean", `{"desired":"stopped"}`)
		waitFor(t, "stopped", func() bool { s, _ := lastStatus(cp, "clean"); return s == stopped })
	})

	t.Run("a long-running process is stopped on request and resumed after a restart", func(t *testing.T) {
		pidFile := filepath.Join(tmp, "daemon.pid")
		cp.process(t, "p9", "daemon", `{"desired":"running","restart":"always","command":`+cmdJSON("echo $$ >> "+pidFile+"; exec sleep 60")+`}`)
		waitFor(t, "running", func() bool { s, _ := lastStatus(cp, "daemon"); return s == running && lines(t, pidFile) == 1 })
		mustClose(t, a) // stops it, and reports that once the link is back
		cfg.Token = ""
		a = mustOpen(outer, cfg) // lives on after the subtest
		waitFor(t, "stopped by the agent", func() bool {
			for _, r := range processReports(cp, "daemon") {
				if r.GetStatus() == stopped && r.GetDetail() == "agent stopping" {
					return true
				}
			}
			return false
		})
		waitFor(t, "running again", func() bool { return lines(t, pidFile) == 2 })
		cp.process(t, "p10", "daemon", `{"desired":"stopped"}`)
		waitFor(t, "stopped", func() bool { s, _ := lastStatus(cp, "daemon"); return s == stopped })
	})

	ack := cp.send(func() *logbookv1.EdgeCommand {
		c := cp.command("p-bad", processMethodName, "evil")
		c.Payload = []byte(`{"desired":"running","command":["/bin/rm","-rf","/"]}`)
		c.Sign(cp.key)
		return c
	}())
	if !strings.Contains(ack.GetRefusal(), "not on the allowlist") {
		t.Fatalf("ack %v", ack)
	}
}
