package raft

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// leadership tracks this node's leadership as raft reports it.
type leadership struct {
	mu      sync.Mutex
	leader  bool
	term    uint64        // counts changes; a term of leadership is one value
	changed chan struct{} // closed and replaced on every change
}

func (l *leadership) set(leader bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leader == leader {
		return
	}
	l.leader = leader
	l.term++
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *leadership) get() (leader bool, term uint64, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leader, l.term, l.changed
}

// watchLeadership follows raft's leadership notifications until the node
// closes.
func (n *Node) watchLeadership() {
	for {
		select {
		case leader := <-n.notifyCh:
			n.lead.set(leader)
			if leader {
				n.logger.Info("raft: this node leads")
			} else {
				n.logger.Info("raft: this node no longer leads")
			}
		case <-n.done:
			n.lead.set(false)
			return
		}
	}
}

// RunAsLeader runs fn whenever this node leads, until ctx ends or the node
// closes. It is how the server runs what must run on exactly one node: the
// entity host, the command dispatcher, the NATS bridge.
//
// Each time the node gains leadership, RunAsLeader first applies a raft
// barrier, so this node's replica holds every entry committed by earlier
// leaders, then calls fn with a context that is cancelled as soon as the
// leadership is lost (or ctx ends, or the node closes). fn must return once
// its context is done; RunAsLeader waits for it before it runs fn again,
// so two runs never overlap on one node.
//
// Raft cannot stop a deposed leader that does not know it yet from acting
// for a moment (until its lease times out); what fences it is the log: its
// appends carry expected versions, checked when the entry is applied, in
// log order, on every replica, so an append decided on stale state fails
// with ErrWrongExpectedVersion (or never commits) instead of forking a
// stream.
//
// When fn returns an error while this node still leads, RunAsLeader
// returns it; when fn returns nil, RunAsLeader waits for the leadership to
// end before it runs fn again. It returns ctx's error when ctx ends, and
// ErrClosed when the node closes.
func (n *Node) RunAsLeader(ctx context.Context, fn func(ctx context.Context) error) error {
	for {
		term, err := n.awaitLeadership(ctx)
		if err != nil {
			return err
		}
		if err := n.raft.Barrier(n.cfg.CallTimeout).Error(); err != nil {
			n.logger.Warn("raft: barrier after gaining leadership failed", "err", err)
			continue // lost it already, or the node is closing
		}
		lctx, cancel := context.WithCancel(ctx)
		lost := make(chan struct{})
		var watch sync.WaitGroup
		watch.Add(1)
		go func() {
			defer watch.Done()
			defer cancel()
			for {
				leader, t, changed := n.lead.get()
				if !leader || t != term {
					close(lost)
					return
				}
				select {
				case <-changed:
				case <-lctx.Done():
					return
				case <-n.done:
					return
				}
			}
		}()
		err = fn(lctx)
		cancel()
		watch.Wait()
		select {
		case <-n.done:
			return ErrClosed
		default:
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-lost:
			if err != nil && !errors.Is(err, context.Canceled) {
				n.logger.Warn("raft: leader task ended with leadership", "err", err)
			}
			continue
		default:
		}
		if err != nil {
			return fmt.Errorf("raft: leader task: %w", err)
		}
		if err := n.awaitLeadershipEnd(ctx, term); err != nil {
			return err
		}
	}
}

// awaitLeadership waits until this node leads and returns the term of
// that leadership.
func (n *Node) awaitLeadership(ctx context.Context) (uint64, error) {
	for {
		leader, term, changed := n.lead.get()
		if leader {
			return term, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-n.done:
			return 0, ErrClosed
		}
	}
}

func (n *Node) awaitLeadershipEnd(ctx context.Context, term uint64) error {
	for {
		leader, t, changed := n.lead.get()
		if !leader || t != term {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.done:
			return ErrClosed
		}
	}
}
