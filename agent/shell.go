package agent

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"time"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// shellMethod runs "shellcommand" commands: the domain is the program (an
// exact entry of the allowlist), the args are its arguments. No shell is
// involved. The command runs until it exits, its deadline, or
// MaxCommandDuration, whichever comes first; then its process group is
// killed. Combined output is kept up to MaxOutput.
type shellMethod struct {
	allow   map[string]bool
	max     time.Duration
	grace   time.Duration
	records *pidRecords
}

func (s *shellMethod) check(cmd *logbookv1.EdgeCommand) error {
	if !s.allow[cmd.GetDomain()] {
		return refuse("program %q is not on the allowlist", cmd.GetDomain())
	}
	return nil
}

func (s *shellMethod) run(ctx context.Context, cmd *logbookv1.EdgeCommand) *logbookv1.AgentCommandResult {
	timeout := min(s.max, time.Until(cmd.GetDeadline().AsTime()))
	return runProgram(ctx, timeout, s.grace, cmd.GetDomain(), cmd.GetArgs(), func(c *exec.Cmd) *runRecord {
		return s.records.prepare(pidKindCommand, cmd.GetCommandId(), c)
	})
}

// runProgram runs program with args for at most timeout and reports how it
// went. record, called before the program starts, records it (pidRecords).
func runProgram(ctx context.Context, timeout, grace time.Duration, program string, args []string, record func(*exec.Cmd) *runRecord) *logbookv1.AgentCommandResult {
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := exec.CommandContext(runCtx, program, args...)
	setProcessGroup(c)
	c.Cancel = func() error { return killProcessGroup(c) }
	c.WaitDelay = grace
	out := &limitedBuffer{max: MaxOutput}
	c.Stdout, c.Stderr = out, out
	rec := record(c)
	err := c.Start()
	if err == nil {
		rec.started(c)
		err = c.Wait()
	}
	rec.done()
	res := &logbookv1.AgentCommandResult{ExitCode: -1}
	if c.ProcessState != nil {
		res.ExitCode = int32(c.ProcessState.ExitCode())
	}
	res.Output, res.OutputTruncated = out.bytes()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		res.Error = "stopped: agent shutting down"
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		res.Error = fmt.Sprintf("timeout after %v", timeout.Round(time.Millisecond))
	case errors.As(err, &exitErr):
		// The exit code says it.
	default:
		res.Error = err.Error()
	}
	return res
}

// limitedBuffer keeps the first max bytes written to it and counts the rest.
type limitedBuffer struct {
	mu        sync.Mutex
	max       int
	buf       []byte
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.max - len(b.buf)
	if len(p) > room {
		b.truncated = true
		b.buf = append(b.buf, p[:max(room, 0)]...)
	} else {
		b.buf = append(b.buf, p...)
	}
	return len(p), nil
}

func (b *limitedBuffer) bytes() ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf, b.truncated
}
