package api

import (
	"context"

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
