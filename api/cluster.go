package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// clusterService implements logbookv1connect.ClusterServiceHandler.
type clusterService struct{ s *Server }

// ClusterStatus answers Deps.Cluster's view of the cluster, or, on a single
// node (Deps.Cluster nil), clustered=false with this node as the only
// member, leading, at the log's head.
func (c clusterService) ClusterStatus(ctx context.Context, req *connect.Request[logbookv1.ClusterStatusRequest]) (*connect.Response[logbookv1.ClusterStatusResponse], error) {
	if c.s.d.Cluster == nil {
		head, err := c.s.d.Store.Head(ctx)
		if err != nil {
			return nil, err
		}
		return connect.NewResponse(&logbookv1.ClusterStatusResponse{
			Leader: c.s.d.NodeID,
			Members: []*logbookv1.ClusterMember{{
				Id: c.s.d.NodeID, Address: c.s.d.NodeAddress, Leader: true, Voter: true,
				AppliedPosition: head.Position, HeadHash: head.Hash[:],
			}},
		}), nil
	}
	st, err := c.s.d.Cluster(ctx)
	if err != nil {
		return nil, err
	}
	out := &logbookv1.ClusterStatusResponse{Clustered: true, Leader: st.Leader}
	for _, m := range st.Members {
		pm := &logbookv1.ClusterMember{
			Id: m.ID, Address: m.Address, Leader: m.Leader, Voter: m.Voter,
			AppliedPosition: m.AppliedPosition, HeadHash: m.HeadHash,
		}
		if m.Err != nil {
			pm.Error = m.Err.Error()
		}
		out.Members = append(out.Members, pm)
	}
	return connect.NewResponse(out), nil
}

// transferWait bounds how long TransferLeadership waits to learn the new
// leader: several election timeouts.
const transferWait = 10 * time.Second

// errNotClustered answers membership calls on a single node.
func errNotClustered() error {
	return connect.NewError(connect.CodeFailedPrecondition, errors.New("this node is not clustered: start it with logbook serve --cluster"))
}

// RemoveNode takes a node out of the raft configuration.
func (c clusterService) RemoveNode(ctx context.Context, req *connect.Request[logbookv1.RemoveNodeRequest]) (*connect.Response[logbookv1.RemoveNodeResponse], error) {
	if c.s.d.ClusterAdmin == nil {
		return nil, errNotClustered()
	}
	id := req.Msg.GetId()
	if id == "" {
		return nil, invalidf("id: empty; name the node to remove (see logbook cluster status)")
	}
	if err := c.s.d.ClusterAdmin.Remove(ctx, id); err != nil {
		return nil, err
	}
	c.s.d.Logger.Info("cluster: node removed", "node", id, "by", MetadataFrom(ctx).Principal)
	return connect.NewResponse(&logbookv1.RemoveNodeResponse{}), nil
}

// TransferLeadership hands the leadership to another node.
func (c clusterService) TransferLeadership(ctx context.Context, req *connect.Request[logbookv1.TransferLeadershipRequest]) (*connect.Response[logbookv1.TransferLeadershipResponse], error) {
	if c.s.d.ClusterAdmin == nil {
		return nil, errNotClustered()
	}
	before, _ := c.s.d.ClusterAdmin.Leader()
	if id := req.Msg.GetId(); id != "" && id == before {
		return nil, preconditionf("node %s leads already", id)
	}
	if err := c.s.d.ClusterAdmin.TransferLeadership(ctx, req.Msg.GetId()); err != nil {
		return nil, err
	}
	// This node learns the new leader from its first message; answer
	// with it, not with the old one.
	leader, _ := c.s.d.ClusterAdmin.Leader()
	if leader == "" || leader == before {
		// Bounded: the leadership may also come back to the same node.
		wctx, cancel := context.WithTimeout(ctx, transferWait)
		defer cancel()
		wait := time.NewTicker(10 * time.Millisecond)
		defer wait.Stop()
		for leader == "" || leader == before {
			select {
			case <-wctx.Done():
				return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("the transfer was made, but no other leader is known after %v (now: %q); see logbook cluster status", transferWait, leader))
			case <-wait.C:
			}
			leader, _ = c.s.d.ClusterAdmin.Leader()
		}
	}
	c.s.d.Logger.Info("cluster: leadership transferred", "to", leader, "by", MetadataFrom(ctx).Principal)
	return connect.NewResponse(&logbookv1.TransferLeadershipResponse{Leader: leader}), nil
}
