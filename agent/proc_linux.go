package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// childAttr: own process group, and SIGKILL when the agent dies (even by
// SIGKILL), so that a command or supervised process does not outlive it.
// Pdeathsig reaches only the child itself; what the child started in its
// group is killed from the pid record on the next start (running.go).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// procStat is what the agent reads from /proc/<pid>/stat.
type procStat struct {
	state     byte   // R, S, D, Z, ...
	pgrp      int    // process group
	startTime uint64 // clock ticks after boot: with the pid, names one process
}

var errNoProcess = errors.New("no such process")

// readProcStat reads /proc/<pid>/stat; a process that does not exist gives
// errNoProcess.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return procStat{}, errNoProcess
	}
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// parseProcStat parses the content of /proc/<pid>/stat: "pid (comm) state
// ppid pgrp ... starttime ...", where comm may hold spaces and parentheses,
// so fields are counted after the last ')'. starttime is field 22.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("proc stat: no command name in %.60q", b)
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("proc stat: %d fields after the command name, want at least 20", len(f))
	}
	pgrp, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return procStat{}, fmt.Errorf("proc stat: pgrp: %w", err)
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("proc stat: starttime: %w", err)
	}
	return procStat{state: f[0][0], pgrp: pgrp, startTime: start}, nil
}

// processStartTime returns the start time of process pid, the identity
// check of a pid record.
func processStartTime(pid int) (uint64, error) {
	st, err := readProcStat(pid)
	return st.startTime, err
}

// groupMembers returns the pids of the live (not zombie) processes in
// process group pgid.
func groupMembers(pgid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.pgrp != pgid || st.state == 'Z' || st.state == 'X' {
			continue
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// markedProcesses returns the live processes whose environment holds
// env=<token> for one of tokens, with the token's record.
func markedProcesses(env string, tokens map[string]pidRecord) (map[int]pidRecord, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	found := map[int]pidRecord{}
	self := os.Getpid()
	prefix := []byte(env + "=")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue // gone, or not ours to read
		}
		for kv := range bytes.SplitSeq(b, []byte{0}) {
			tok, ok := bytes.CutPrefix(kv, prefix)
			if !ok {
				continue
			}
			if rec, ok := tokens[string(tok)]; ok {
				if st, err := readProcStat(pid); err == nil && st.state != 'Z' && st.state != 'X' {
					found[pid] = rec
				}
			}
			break
		}
	}
	return found, nil
}

// killProcess sends SIGKILL to pid.
func killProcess(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
