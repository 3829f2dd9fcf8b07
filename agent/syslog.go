package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Limits of syslog forwarding.
const (
	// MaxLineLen: longer lines are forwarded in pieces of this size.
	MaxLineLen = 16 << 10
	// linesPerBatch bounds one spool append (and the position saved with it).
	linesPerBatch = 512
)

// syslogMethod runs "syslogforwarding" commands. The domain is a log name
// from Config.Syslog; the first argument (or else the payload) is "start" or
// "stop". Start follows the file from its current end; each new line
// becomes an AgentSyslogLine event (method syslogforwarding, domain the log
// name). The follower survives rotation by rename (the old file is read to
// its end, then the new one from its start) and truncation in place (read
// again from the start). Its position is saved in <data>/syslog/<name>.json
// after each spooled batch, so a restart resumes there; lines of a batch
// spooled just before a crash may be sent twice.
type syslogMethod struct {
	files  map[string]string
	dir    string
	poll   time.Duration
	spool  *Spool
	logger *slog.Logger
	ctx    context.Context // the agent's work context

	mu        sync.Mutex
	followers map[string]*follower
	wg        sync.WaitGroup
}

// followerState is <data>/syslog/<name>.json.
type followerState struct {
	Running bool   `json:"running"`
	Path    string `json:"path"`
	Offset  int64  `json:"offset"`
	FileID  string `json:"file_id,omitempty"`
}

type follower struct {
	name string
	path string
	st   followerState
	stop chan struct{}
	done chan struct{}
}

func syslogAction(cmd *logbookv1.EdgeCommand) string {
	if len(cmd.GetArgs()) > 0 {
		return cmd.GetArgs()[0]
	}
	return strings.TrimSpace(string(cmd.GetPayload()))
}

func (s *syslogMethod) check(cmd *logbookv1.EdgeCommand) error {
	if _, ok := s.files[cmd.GetDomain()]; !ok {
		return refuse("no log named %q is configured", cmd.GetDomain())
	}
	switch a := syslogAction(cmd); a {
	case "start", "stop":
		return nil
	default:
		return refuse("syslogforwarding: action %q: want start or stop", a)
	}
}

func (s *syslogMethod) statePath(name string) string { return filepath.Join(s.dir, name+".json") }

func (s *syslogMethod) run(ctx context.Context, cmd *logbookv1.EdgeCommand) *logbookv1.AgentCommandResult {
	name := cmd.GetDomain()
	var err error
	var msg string
	if syslogAction(cmd) == "start" {
		msg, err = s.start(name)
	} else {
		msg, err = s.stop(name)
	}
	if err != nil {
		return &logbookv1.AgentCommandResult{ExitCode: 1, Error: err.Error()}
	}
	return &logbookv1.AgentCommandResult{ExitCode: 0, Output: []byte(msg)}
}

// start follows the log from its current end, unless it is followed already.
func (s *syslogMethod) start(name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.files[name]
	if _, ok := s.followers[name]; ok {
		return fmt.Sprintf("already following %s", path), nil
	}
	st := followerState{Running: true, Path: path}
	if fi, err := os.Stat(path); err == nil {
		st.Offset, st.FileID = fi.Size(), fileID(fi)
	}
	if err := writeJSONAtomic(s.statePath(name), st, 0o600); err != nil {
		return "", err
	}
	s.launch(name, st)
	return fmt.Sprintf("following %s from offset %d", path, st.Offset), nil
}

func (s *syslogMethod) stop(name string) (string, error) {
	s.mu.Lock()
	f := s.followers[name]
	delete(s.followers, name)
	s.mu.Unlock()
	st := followerState{Path: s.files[name]}
	if f != nil {
		close(f.stop)
		<-f.done
		st = f.st
	}
	st.Running = false
	if err := writeJSONAtomic(s.statePath(name), st, 0o600); err != nil {
		return "", err
	}
	return fmt.Sprintf("stopped following %s", st.Path), nil
}

// resume restarts the followers that were running when the agent stopped.
func (s *syslogMethod) resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, path := range s.files {
		var st followerState
		if err := readJSON(s.statePath(name), &st); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.logger.Error("syslog: state unreadable; not resuming", "log", name, "err", err)
			}
			continue
		}
		if !st.Running {
			continue
		}
		if st.Path != path { // reconfigured: a different file, from its end
			st = followerState{Running: true, Path: path}
			if fi, err := os.Stat(path); err == nil {
				st.Offset, st.FileID = fi.Size(), fileID(fi)
			}
		}
		s.launch(name, st)
	}
}

func (s *syslogMethod) launch(name string, st followerState) {
	f := &follower{name: name, path: st.Path, st: st, stop: make(chan struct{}), done: make(chan struct{})}
	s.followers[name] = f
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(f.done)
		s.follow(f)
	}()
}

// wait returns once every follower stopped (after the work context ends).
func (s *syslogMethod) wait() { s.wg.Wait() }

func (s *syslogMethod) follow(f *follower) {
	var file *os.File
	defer func() {
		if file != nil {
			file.Close()
		}
	}()
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for {
		var err error
		file, err = s.pollOnce(f, file)
		if err != nil && s.ctx.Err() == nil {
			s.logger.Warn("syslog: follow", "log", f.name, "path", f.path, "err", err)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-f.stop:
			return
		case <-t.C:
		}
	}
}

// pollOnce forwards what was appended to the followed file since the last
// poll, handling truncation and rotation, and returns the open file.
func (s *syslogMethod) pollOnce(f *follower, file *os.File) (*os.File, error) {
	if file == nil {
		nf, err := os.Open(f.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil // not there (yet)
		} else if err != nil {
			return nil, err
		}
		fi, err := nf.Stat()
		if err != nil {
			nf.Close()
			return nil, err
		}
		if id := fileID(fi); id != f.st.FileID || fi.Size() < f.st.Offset {
			// Another file than the one we were reading (or it shrank):
			// start from the beginning.
			f.st.FileID, f.st.Offset = id, 0
		}
		file = nf
	}
	// Truncated in place (copytruncate): start again from the top.
	if fi, err := file.Stat(); err == nil && fi.Size() < f.st.Offset {
		s.logger.Info("syslog: file truncated; reading from the start", "log", f.name, "path", f.path)
		f.st.Offset = 0
	}
	if err := s.readLines(f, file, false); err != nil {
		return file, err
	}
	// Rotated by rename: a new file at the path. The old one was read to
	// its end just now; flush its last unterminated line and move on.
	pfi, err := os.Stat(f.path)
	if err != nil {
		return file, nil // renamed away, the new one not created yet
	}
	ofi, err := file.Stat()
	if err != nil || os.SameFile(pfi, ofi) {
		return file, err
	}
	if err := s.readLines(f, file, true); err != nil {
		return file, err
	}
	s.logger.Info("syslog: file rotated; following the new one", "log", f.name, "path", f.path)
	file.Close()
	f.st.FileID, f.st.Offset = "", 0
	return s.pollOnce(f, nil)
}

// readLines spools the complete lines from f's offset to the end of file (and
// the unterminated rest too when final), saving the position after each
// batch.
func (s *syslogMethod) readLines(f *follower, file *os.File, final bool) error {
	buf := make([]byte, 64<<10)
	var pending []byte // bytes read but not yet spooled (a partial line)
	var batch []*logbookv1.EdgeEvent
	consumed := f.st.Offset
	readAt := f.st.Offset
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := s.spool.Append(context.WithoutCancel(s.ctx), batch...); err != nil {
			return err
		}
		batch = batch[:0]
		f.st.Offset = consumed
		return writeJSONAtomic(s.statePath(f.name), f.st, 0o600)
	}
	add := func(line []byte) error {
		e, err := newEdgeEvent("syslogforwarding", f.name, &logbookv1.AgentSyslogLine{
			Path: f.path, Line: strings.ToValidUTF8(string(line), "\uFFFD"), ReadAt: timestamppb.Now()})
		if err != nil {
			return err
		}
		batch = append(batch, e)
		if len(batch) >= linesPerBatch {
			return flush()
		}
		return nil
	}
	for {
		n, err := file.ReadAt(buf, readAt)
		readAt += int64(n)
		pending = append(pending, buf[:n]...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 && len(pending) < MaxLineLen {
				break
			}
			cut, skip := i, 1
			if i < 0 || i > MaxLineLen {
				cut, skip = MaxLineLen, 0
			}
			line := bytes.TrimSuffix(pending[:cut], []byte("\r"))
			consumed += int64(cut + skip)
			if err := add(line); err != nil {
				return err
			}
			pending = pending[cut+skip:]
		}
		if errors.Is(err, io.EOF) || n == 0 {
			break
		}
		if err != nil {
			return err
		}
	}
	if final && len(pending) > 0 {
		consumed += int64(len(pending))
		if err := add(pending); err != nil {
			return err
		}
	}
	return flush()
}
