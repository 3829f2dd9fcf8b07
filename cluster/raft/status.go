package raft

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	hraft "github.com/hashicorp/raft"

	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Status is the cluster as one node sees it, with each member's own
// report.
type Status struct {
	// LeaderID and LeaderAddress name the leader this node knows (empty
	// during an election).
	LeaderID, LeaderAddress string
	// Members are the servers of the raft configuration, in its order.
	Members []MemberStatus
}

// MemberStatus is one member: its place in the configuration and, unless
// Err is set, what it reported about itself.
type MemberStatus struct {
	ID, Address string
	Voter       bool
	// State is "Leader", "Follower", "Candidate" or "Shutdown".
	State string
	// Term is the member's raft term; AppliedIndex, CommitIndex and
	// LastLogIndex its raft log positions.
	Term, AppliedIndex, CommitIndex, LastLogIndex uint64
	// Head is the position and hash of the member's replica as applied:
	// members with the same Head hold the same log.
	Head events.Head
	// Err says why the member could not be asked.
	Err error
}

// Status asks every member of the configuration for its state, in
// parallel, each within ctx.
func (n *Node) Status(ctx context.Context) (Status, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return Status{}, fmt.Errorf("raft: status: %w", err)
	}
	servers := f.Configuration().Servers
	id, addr := n.Leader()
	st := Status{LeaderID: id, LeaderAddress: addr, Members: make([]MemberStatus, len(servers))}
	var wg sync.WaitGroup
	for i, s := range servers {
		m := &st.Members[i]
		m.ID, m.Address, m.Voter = string(s.ID), string(s.Address), s.Suffrage == hraft.Voter
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p *logbookv1.NodeStatus
			if m.ID == n.cfg.ID {
				p = n.localStatus()
			} else {
				resp, err := n.net.call(ctx, m.Address, &logbookv1.NodeRequest{Call: &logbookv1.NodeRequest_Status{Status: &logbookv1.StatusRequest{}}})
				if err == nil && resp.GetError() != nil {
					err = errorFromProto(resp.GetError(), nil)
				}
				if err != nil {
					m.Err = err
					return
				}
				p = resp.GetStatus()
			}
			m.State, m.Term = p.GetState(), p.GetTerm()
			m.AppliedIndex, m.CommitIndex, m.LastLogIndex = p.GetAppliedIndex(), p.GetCommitIndex(), p.GetLastLogIndex()
			m.Head.Position = p.GetHeadPosition()
			if h := p.GetHeadHash(); len(h) != len(m.Head.Hash) {
				m.Err = fmt.Errorf("node %s reported a %d-byte head hash, want %d", m.ID, len(h), len(m.Head.Hash))
			} else {
				copy(m.Head.Hash[:], h)
			}
		}()
	}
	wg.Wait()
	return st, nil
}

// localStatus is this node's report about itself.
func (n *Node) localStatus() *logbookv1.NodeStatus {
	head := n.fsm.headNow()
	_, leaderID := n.raft.LeaderWithID()
	stats := n.raft.Stats()
	lastLog, _ := strconv.ParseUint(stats["last_log_index"], 10, 64)
	return &logbookv1.NodeStatus{
		Id:           n.cfg.ID,
		Address:      n.addr,
		State:        n.raft.State().String(),
		LeaderId:     string(leaderID),
		Term:         n.raft.CurrentTerm(),
		AppliedIndex: n.raft.AppliedIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		LastLogIndex: lastLog,
		HeadPosition: head.Position,
		HeadHash:     head.Hash[:],
	}
}
