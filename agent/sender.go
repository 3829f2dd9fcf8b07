package agent

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

var (
	errNoResponders = errors.New("no responders")
	errAckTimeout   = errors.New("no acknowledgement in time")
)

// sender publishes the spool in order and advances its checkpoint as acks
// come back. Up to window events are in flight; after any failure (publish
// error, no responders, an ack not arriving in time) it backs off and
// resends from the first unacknowledged event, one at a time until an ack
// comes back, then with the full window again. So in steady state the
// control plane sees each event once and in seq order; after a lost message
// it may see events again (it deduplicates by id) and can restore order by
// seq.
type sender struct {
	nc       *nats.Conn
	spool    *Spool
	unit     string
	window   int
	timeout  time.Duration
	retry    backoff
	logger   *slog.Logger
	linkUp   chan struct{} // signalled on (re)connect
	probing  bool
	acks     chan *nats.Msg
	inbox    string
	inflight []flight
}

type flight struct {
	seq    uint64
	sentAt time.Time
	done   bool
}

func subjectFor(unit, kind, method, domain string) string {
	return unit + "." + kind + "." + subjectToken(method) + "." + subjectToken(domain)
}

// run delivers the spool until ctx is done.
func (s *sender) run(ctx context.Context) {
	s.inbox = s.nc.NewInbox()
	s.acks = make(chan *nats.Msg, 4*s.window+16)
	sub, err := s.nc.ChanSubscribe(s.inbox, s.acks)
	if err != nil {
		s.logger.Error("spool: subscribe to acks", "err", err)
		return
	}
	defer sub.Unsubscribe()
	for ctx.Err() == nil {
		err := s.round(ctx)
		if err == nil || ctx.Err() != nil {
			continue
		}
		s.probing = true
		wait := s.retry.next()
		s.logger.Debug("spool: delivery interrupted", "err", err, "backlog", s.spool.Backlog(), "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-s.linkUp:
		}
		t.Stop()
	}
}

// round sends from the first unacknowledged event until the spool is drained
// (then waits for new events) or something fails.
func (s *sender) round(ctx context.Context) error {
	from := s.spool.Acked() + 1
	if from > s.spool.Head() {
		// Drained, with no read open: the moment to compact.
		if _, err := s.spool.Compact(ctx); err != nil {
			s.logger.Error("spool: compaction failed", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-s.spool.Notify():
		case <-s.linkUp:
		}
		return nil
	}
	// Drop acks of an earlier round.
	for len(s.acks) > 0 {
		<-s.acks
	}
	s.inflight = s.inflight[:0]
	next, stop := iter.Pull2(s.spool.Read(ctx, from))
	defer stop()
	sent := from - 1
	for {
		window := s.window
		if s.probing {
			window = 1
		}
		for len(s.inflight) < window {
			e, err, ok := next()
			if !ok {
				break
			}
			if err != nil {
				return err
			}
			if err := s.publish(e); err != nil {
				return err
			}
			sent = e.Seq
			s.inflight = append(s.inflight, flight{seq: e.Seq, sentAt: time.Now()})
		}
		if len(s.inflight) == 0 {
			return nil // this read is exhausted; the next round reads what came since
		}
		wait := time.Until(s.inflight[0].sentAt.Add(s.timeout))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("%w: seq %d (last sent %d)", errAckTimeout, s.inflight[0].seq, sent)
		case m := <-s.acks:
			t.Stop()
			if err := s.handleAck(m); err != nil {
				return err
			}
			// Coalesce the acks already here into one checkpoint write.
			for drained := false; !drained; {
				select {
				case m := <-s.acks:
					if err := s.handleAck(m); err != nil {
						return err
					}
				default:
					drained = true
				}
			}
			if err := s.advance(); err != nil {
				return err
			}
		}
	}
}

func (s *sender) publish(e *logbookv1.EdgeEvent) error {
	data, err := proto.Marshal(e)
	if err != nil {
		return err
	}
	return s.nc.PublishMsg(&nats.Msg{
		Subject: subjectFor(s.unit, "event", e.GetMethod(), e.GetDomain()),
		Reply:   s.inbox,
		Data:    data,
	})
}

// handleAck marks the in-flight event an ack names as done.
func (s *sender) handleAck(m *nats.Msg) error {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return errNoResponders
	}
	var ack logbookv1.EdgeEventAck
	if err := proto.Unmarshal(m.Data, &ack); err != nil {
		s.logger.Warn("spool: undecodable ack", "err", err)
		return nil
	}
	for i := range s.inflight {
		f := &s.inflight[i]
		if f.seq != ack.GetSeq() {
			continue
		}
		if !ack.GetStored() {
			if ack.GetError() == "" {
				return fmt.Errorf("control plane did not store seq %d", f.seq)
			}
			// Rejected for good: drop it, but say so.
			s.logger.Error("spool: control plane rejected event; dropping it", "seq", f.seq, "error", ack.GetError())
		}
		f.done = true
		s.probing = false
		s.retry.reset()
		break
	}
	return nil
}

// advance pops the acknowledged prefix of the in-flight events and records
// it in the spool's checkpoint.
func (s *sender) advance() error {
	n := 0
	for n < len(s.inflight) && s.inflight[n].done {
		n++
	}
	if n == 0 {
		return nil
	}
	last := s.inflight[n-1].seq
	s.inflight = append(s.inflight[:0], s.inflight[n:]...)
	return s.spool.Ack(last)
}
