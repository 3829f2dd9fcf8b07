package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// ProcessSpec is the payload (JSON) of a "process" command; the domain is
// the process name (letters, digits, '-', '_'). Fields left out keep their
// current value:
//
//	{"desired": "running", "restart": "on-failure", "command": ["/usr/bin/prog", "-v"]}
//
// desired is "running" or "stopped"; restart is "always", "on-failure" (the
// default) or "never"; command is the program (an exact allowlist entry) and
// its arguments, required the first time a process is made to run. A
// changed command restarts a running process. Every process command also
// clears a "failed" or "exited" process, so desired "running" starts it
// again.
//
// The agent keeps the merged spec in <data>/processes/<name>.json and
// starts the processes desired running when it starts. It reports each
// status change as a logbook.v1.ReportProcessStatus event (method
// "process", domain the name): RUNNING after start; BACKOFF with the exit
// code while waiting to restart; STOPPING and STOPPED on request (and when
// the agent stops); STOPPED after a clean exit that is not restarted,
// FAILED after a failed one (or a program that cannot be started).
type ProcessSpec struct {
	Desired string   `json:"desired,omitempty"`
	Restart string   `json:"restart,omitempty"`
	Command []string `json:"command,omitempty"`
}

const (
	desiredRunning    = "running"
	desiredStopped    = "stopped"
	restartAlways     = "always"
	restartOnFailure  = "on-failure"
	restartNever      = "never"
	processMethodName = "process"
)

// supervisor runs "process" commands and keeps processes in their desired
// state.
type supervisor struct {
	allow   map[string]bool
	dir     string
	records *pidRecords
	spool   *Spool
	logger  *slog.Logger
	ctx     context.Context // the agent's work context
	cfg     Config

	mu    sync.Mutex
	procs map[string]*supervised
	wg    sync.WaitGroup
}

type supervised struct {
	name string
	mu   sync.Mutex
	spec ProcessSpec
	gen  uint64        // bumped by each command
	wake chan struct{} // capacity 1
	last *logbookv1.ReportProcessStatus
}

func decodeSpec(payload []byte) (ProcessSpec, error) {
	var s ProcessSpec
	d := json.NewDecoder(bytes.NewReader(payload))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		return s, err
	}
	return s, nil
}

func (p *supervisor) check(cmd *logbookv1.EdgeCommand) error {
	if !safeName(cmd.GetDomain()) {
		return refuse("process name %q: want letters, digits, '-' and '_'", cmd.GetDomain())
	}
	s, err := decodeSpec(cmd.GetPayload())
	if err != nil {
		return refuse("process %s: bad payload: %v", cmd.GetDomain(), err)
	}
	switch s.Desired {
	case "", desiredRunning, desiredStopped:
	default:
		return refuse("process %s: desired %q: want running or stopped", cmd.GetDomain(), s.Desired)
	}
	switch s.Restart {
	case "", restartAlways, restartOnFailure, restartNever:
	default:
		return refuse("process %s: restart %q: want always, on-failure or never", cmd.GetDomain(), s.Restart)
	}
	if len(s.Command) > 0 && !p.allow[s.Command[0]] {
		return refuse("program %q is not on the allowlist", s.Command[0])
	}
	if s.Desired == desiredRunning && len(s.Command) == 0 {
		p.mu.Lock()
		sp := p.procs[cmd.GetDomain()]
		p.mu.Unlock()
		if sp == nil || len(sp.current().Command) == 0 {
			return refuse("process %s: no command given and none known", cmd.GetDomain())
		}
	}
	return nil
}

func (p *supervisor) statePath(name string) string { return filepath.Join(p.dir, name+".json") }

func (p *supervisor) run(ctx context.Context, cmd *logbookv1.EdgeCommand) *logbookv1.AgentCommandResult {
	name := cmd.GetDomain()
	upd, _ := decodeSpec(cmd.GetPayload()) // checked before
	p.mu.Lock()
	sp := p.procs[name]
	spec := ProcessSpec{Desired: desiredStopped, Restart: restartOnFailure}
	if sp != nil {
		spec = sp.current()
	}
	if upd.Desired != "" {
		spec.Desired = upd.Desired
	}
	if upd.Restart != "" {
		spec.Restart = upd.Restart
	}
	if len(upd.Command) > 0 {
		spec.Command = upd.Command
	}
	if err := writeJSONAtomic(p.statePath(name), spec, 0o600); err != nil {
		p.mu.Unlock()
		return &logbookv1.AgentCommandResult{ExitCode: 1, Error: fmt.Sprintf("store process spec: %v", err)}
	}
	if sp == nil {
		p.launch(name, spec)
	} else {
		sp.set(spec)
	}
	p.mu.Unlock()
	return &logbookv1.AgentCommandResult{ExitCode: 0,
		Output: fmt.Appendf(nil, "process %s: desired %s, restart %s, command %q", name, spec.Desired, spec.Restart, spec.Command)}
}

// resume starts supervising the processes stored in the data dir.
func (p *supervisor) resume() error {
	entries, err := os.ReadDir(p.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !safeName(name) {
			continue
		}
		var spec ProcessSpec
		if err := readJSON(filepath.Join(p.dir, e.Name()), &spec); err != nil {
			p.logger.Error("process: spec unreadable; not supervising", "process", name, "err", err)
			continue
		}
		p.launch(name, spec)
	}
	return nil
}

func (p *supervisor) launch(name string, spec ProcessSpec) *supervised {
	sp := &supervised{name: name, spec: spec, wake: make(chan struct{}, 1)}
	p.procs[name] = sp
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.supervise(sp)
	}()
	return sp
}

func (p *supervisor) wait() { p.wg.Wait() }

func (sp *supervised) current() ProcessSpec {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.spec
}

func (sp *supervised) snapshot() (ProcessSpec, uint64) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.spec, sp.gen
}

func (sp *supervised) set(spec ProcessSpec) {
	sp.mu.Lock()
	sp.spec = spec
	sp.gen++
	sp.mu.Unlock()
	select {
	case sp.wake <- struct{}{}:
	default:
	}
}

func (p *supervisor) report(sp *supervised, status logbookv1.ProcessStatus, restarts uint32, exit int32, detail string) {
	r := &logbookv1.ReportProcessStatus{Status: status, RestartCount: restarts, ExitCode: exit, Detail: detail}
	if sp.last != nil && sp.last.GetStatus() == status && sp.last.GetRestartCount() == restarts &&
		sp.last.GetExitCode() == exit && sp.last.GetDetail() == detail {
		return
	}
	sp.last = r
	p.logger.Info("process: status", "process", sp.name, "status", status.String(), "restarts", restarts, "exit_code", exit, "detail", detail)
	if _, err := p.spool.Emit(context.WithoutCancel(p.ctx), processMethodName, sp.name, r); err != nil {
		p.logger.Error("process: status not spooled", "process", sp.name, "err", err)
	}
}

// supervise is the one goroutine that owns the process sp: it starts,
// watches, restarts and stops it until the agent's work context ends.
func (p *supervisor) supervise(sp *supervised) {
	var (
		restarts uint32
		bo       = backoff{min: p.cfg.ProcessBackoffMin, max: p.cfg.ProcessBackoffMax}
		halted   bool   // exited and not to be restarted until the next command
		seenGen  uint64 // the command generation halted refers to
	)
	idle := func() bool { // wait for a command or the end; false at the end
		select {
		case <-p.ctx.Done():
			return false
		case <-sp.wake:
			return true
		}
	}
	for p.ctx.Err() == nil {
		spec, gen := sp.snapshot()
		if halted && gen != seenGen {
			halted = false
		}
		if spec.Desired != desiredRunning || halted {
			if !halted && (sp.last == nil || sp.last.GetStatus() != logbookv1.ProcessStatus_PROCESS_STATUS_STOPPED) {
				p.report(sp, logbookv1.ProcessStatus_PROCESS_STATUS_STOPPED, restarts, 0, "desired stopped")
			}
			if !idle() {
				return
			}
			continue
		}
		c := exec.Command(spec.Command[0], spec.Command[1:]...)
		setProcessGroup(c)
		startedAt := time.Now()
		rec := p.records.prepare(pidKindProcess, sp.name, c)
		if err := c.Start(); err != nil {
			rec.done()
			p.report(sp, logbookv1.ProcessStatus_PROCESS_STATUS_FAILED, restarts, -1, err.Error())
			halted, seenGen = true, gen
			continue
		}
		p.report(sp, logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING, restarts, 0, "")
		rec.started(c)
		exited := make(chan struct{})
		go func() { c.Wait(); rec.done(); close(exited) }()

		// Wait for the exit, a command that changes what we want, or the end.
		stopReason := ""
	waiting:
		for {
			select {
			case <-exited:
				break waiting
			case <-p.ctx.Done():
				stopReason = "agent stopping"
				break waiting
			case <-sp.wake:
				now, _ := sp.snapshot()
				if now.Desired != desiredRunning {
					stopReason = "desired stopped"
				} else if !slices.Equal(now.Command, spec.Command) {
					stopReason = "command changed"
				}
				if stopReason != "" {
					break waiting
				}
			}
		}
		if stopReason != "" {
			p.report(sp, logbookv1.ProcessStatus_PROCESS_STATUS_STOPPING, restarts, 0, stopReason)
			p.stopProcess(c, exited)
			p.report(sp, logbookv1.ProcessStatus_PROCESS_STATUS_STOPPED, restarts, int32(c.ProcessState.ExitCode()), stopReason)
			bo.reset()
			continue
		}
		code := int32(c.ProcessState.ExitCode())
		if time.Since(startedAt) >= p.cfg.ProcessBackoffReset {
			bo.reset()
		}
		restart := spec.Restart == restartAlways || (spec.Restart != restartNever && code != 0)
		if !restart {
			status := logbookv1.ProcessStatus_PROCESS_STATUS_STOPPED
			if code != 0 {
				status = logbookv1.ProcessStatus_PROCESS_STATUS_FAILED
			}
			p.report(sp, status, restarts, code, fmt.Sprintf("exited (%s); restart policy %s", c.ProcessState, spec.Restart))
			halted, seenGen = true, gen
			continue
		}
		wait := bo.next()
		restarts++
		p.report(sp, logbookv1.ProcessStatus_PROCESS_STATUS_BACKOFF, restarts, code,
			fmt.Sprintf("exited (%s); restarting in %v", c.ProcessState, wait.Round(time.Millisecond)))
		t := time.NewTimer(wait)
		select {
		case <-p.ctx.Done():
		case <-t.C:
		case <-sp.wake:
			// A command: re-evaluate at once (it may stop the process).
		}
		t.Stop()
	}
}

// stopProcess sends SIGTERM to the process group, and SIGKILL after the
// grace period.
func (p *supervisor) stopProcess(c *exec.Cmd, exited <-chan struct{}) {
	terminateProcessGroup(c)
	t := time.NewTimer(p.cfg.StopGrace)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		killProcessGroup(c)
		<-exited
	}
}
