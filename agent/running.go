package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// pidRecord is what the agent keeps, in <data>/running/<kind>-<key>.json,
// about each child process it started (a shellcommand or a supervised
// process) while the child runs: enough to find the child's process group
// after the agent was killed, and to tell the child from a process that
// got its pid later.
type pidRecord struct {
	// Kind is "command" or "process"; Name the command id or process name.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Token is in the child's environment as childTokenEnv=<token>, and so
	// in that of everything it starts: it finds them even when the agent
	// died before it knew the pid, or when they left the process group.
	Token string `json:"token"`
	// PID is 0 until the child started.
	PID int `json:"pid,omitempty"`
	// PGID is the child's process group: its own pid (setProcessGroup).
	PGID int `json:"pgid,omitempty"`
	// StartTime is the child's start time in clock ticks after boot
	// (/proc/<pid>/stat field 22); 0 where the system does not tell.
	StartTime uint64 `json:"start_time,omitempty"`
	Program   string `json:"program"`
}

const (
	pidKindCommand = "command"
	pidKindProcess = "process"
)

// childTokenEnv is the environment variable that marks the agent's children.
const childTokenEnv = "LOGBOOK_AGENT_CHILD"

// pidRecords manages the pid records of one data dir.
//
// A record is written before the child starts (with its token, which goes
// into the child's environment), completed with the pid once it started,
// and removed once the agent reaped it. Records are replaced atomically
// (rename) but not fsynced: they only matter while the machine stays up,
// and a crash of the machine ends the children too.
type pidRecords struct {
	dir    string
	logger *slog.Logger
}

// runRecord is the record of one child.
type runRecord struct {
	r    *pidRecords
	path string
	rec  pidRecord
	ok   bool // written
}

func (r *pidRecords) path(kind, name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(r.dir, kind+"-"+hex.EncodeToString(sum[:16])+".json")
}

// prepare marks c (not started yet) with a fresh token in its environment
// and records it. A record that cannot be written is logged, not fatal:
// the child runs unrecorded.
func (r *pidRecords) prepare(kind, name string, c *exec.Cmd) *runRecord {
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	rr := &runRecord{r: r, path: r.path(kind, name), rec: pidRecord{Kind: kind, Name: name, Token: hex.EncodeToString(tok), Program: c.Path}}
	if c.Env == nil {
		c.Env = os.Environ()
	}
	c.Env = append(c.Env, childTokenEnv+"="+rr.rec.Token)
	rr.write()
	return rr
}

func (rr *runRecord) write() {
	if err := writeRecord(rr.path, rr.rec); err != nil {
		rr.r.logger.Error("pid record not written; the process would not be found after a crash",
			"kind", rr.rec.Kind, "name", rr.rec.Name, "err", err)
		return
	}
	rr.ok = true
}

// started completes the record with c's pid, process group and start time.
func (rr *runRecord) started(c *exec.Cmd) {
	pid := c.Process.Pid
	rr.rec.PID, rr.rec.PGID = pid, pid
	if st, err := processStartTime(pid); err == nil {
		rr.rec.StartTime = st
	}
	rr.write()
}

// done removes the record: the child was reaped (or never started).
func (rr *runRecord) done() {
	if err := os.Remove(rr.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		rr.r.logger.Warn("pid record not removed", "path", rr.path, "err", err)
	}
}

// writeRecord replaces path with rec atomically (rename), without fsync.
func writeRecord(path string, rec pidRecord) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// errNoProcInfo: without /proc (not Linux) the agent cannot tell its own
// leftover process from another that got the same pid, so it leaves it
// alone.
var errNoProcInfo = errors.New("process identity not available on this system")

// reapWait bounds how long killLeftovers waits for a killed group to go.
const reapWait = 10 * time.Second

// killLeftovers kills the process groups of the children an earlier run of
// the agent left behind (it was killed, so it could not stop them) and
// removes their records. It runs before commands are settled and
// supervised processes started, so that a command reported failed is not
// still running and a supervised process never runs twice.
//
// A group is killed when its leader is the recorded process (same pid and
// start time), or when the leader is gone but processes remain in the
// group: Linux does not reuse a pid while it names a live process group,
// so those are the leader's children. A pid now held by another process
// (other start time) means the group is gone. Without /proc (not Linux)
// nothing is killed: the agent cannot tell its process from a stranger.
func (r *pidRecords) killLeftovers(ctx context.Context) error {
	entries, err := os.ReadDir(r.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read pid records: %w", err)
	}
	tokens := map[string]pidRecord{}
	var paths []string
	for _, e := range entries {
		path := filepath.Join(r.dir, e.Name())
		paths = append(paths, path)
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var rec pidRecord
		if err := readJSON(path, &rec); err != nil {
			r.logger.Error("pid record unreadable; removing it", "path", path, "err", err)
			continue
		}
		if rec.Token != "" {
			tokens[rec.Token] = rec
		}
		if rec.PID != 0 {
			if err := r.killLeftover(ctx, rec); err != nil {
				return err
			}
		}
	}
	if err := r.killMarked(ctx, tokens); err != nil {
		return err
	}
	for _, path := range paths {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove pid record: %w", err)
		}
	}
	return nil
}

// killMarked kills every process whose environment carries one of tokens
// (see pidRecord.Token) and waits until none is left.
func (r *pidRecords) killMarked(ctx context.Context, tokens map[string]pidRecord) error {
	if len(tokens) == 0 {
		return nil
	}
	deadline := time.Now().Add(reapWait)
	for {
		pids, err := markedProcesses(childTokenEnv, tokens)
		if err != nil {
			if !errors.Is(err, errNoProcInfo) {
				r.logger.Warn("cannot look for leftover processes by their environment", "err", err)
			}
			return nil
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			r.logger.Error("leftover processes survive SIGKILL", "pids", pids)
			return nil
		}
		for pid, rec := range pids {
			r.logger.Warn("killing a process left over from the last run", "kind", rec.Kind, "name", rec.Name, "pid", pid)
			_ = killProcess(pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (r *pidRecords) killLeftover(ctx context.Context, rec pidRecord) error {
	log := r.logger.With("kind", rec.Kind, "name", rec.Name, "pid", rec.PID, "program", rec.Program)
	if rec.PGID <= 1 {
		log.Error("pid record names no usable process group; ignoring it", "pgid", rec.PGID)
		return nil
	}
	start, err := processStartTime(rec.PID)
	switch {
	case err == nil && (rec.StartTime == 0 || start != rec.StartTime):
		log.Info("leftover process is gone (its pid is another process's now)")
		return nil
	case err == nil:
		log.Warn("killing the process group left over from the last run")
	case errors.Is(err, errNoProcess):
		members, err := groupMembers(rec.PGID)
		if err != nil {
			return fmt.Errorf("look for leftovers of %s %s: %w", rec.Kind, rec.Name, err)
		}
		if len(members) == 0 {
			return nil
		}
		log.Warn("killing what the process left over from the last run started", "pids", members)
	default:
		log.Warn("cannot tell whether the process left over from the last run still runs; leaving it", "err", err)
		return nil
	}
	if err := killGroup(rec.PGID); err != nil {
		return fmt.Errorf("kill leftover process group %d of %s %s: %w", rec.PGID, rec.Kind, rec.Name, err)
	}
	// SIGKILL is asynchronous: wait until no live process is left in the
	// group, so that nothing started after this overlaps with it.
	deadline := time.Now().Add(reapWait)
	for {
		members, err := groupMembers(rec.PGID)
		if err != nil || len(members) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			log.Error("leftover processes survive SIGKILL", "pids", members)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
