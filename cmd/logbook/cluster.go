package main

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/spf13/cobra"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func newClusterCommand(a *app) *cobra.Command {
	return newGroup("cluster", "Show the control-plane cluster",
		`Several control-plane nodes replicate the log with raft; the leader hosts the
entities and followers forward writes.`,
		newClusterStatusCommand(a),
	)
}

func newClusterStatusCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's members, leader and applied positions",
		Long: `status lists the control-plane nodes with their applied log position and
head hash: members at the same position must show the same hash.`,
		Example: `  logbook cluster status`,
		Args:    checkedArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.cluster.ClusterStatus, &logbookv1.ClusterStatusRequest{})
				if err != nil {
					return err
				}
				if !p.table() {
					p.message(res)
					return nil
				}
				if !res.GetClustered() {
					p.f("single node (not clustered)\n")
				} else {
					p.f("leader: %s\n", res.GetLeader())
				}
				if len(res.GetMembers()) == 0 {
					return nil
				}
				var rows [][]string
				for _, m := range res.GetMembers() {
					role := "follower"
					if m.GetLeader() {
						role = "leader"
					}
					if !m.GetVoter() {
						role += " (non-voter)"
					}
					hash := hex.EncodeToString(m.GetHeadHash())
					if len(hash) > 16 {
						hash = hash[:16]
					}
					rows = append(rows, []string{m.GetId(), m.GetAddress(), role, fmt.Sprint(m.GetAppliedPosition()), hash, m.GetError()})
				}
				p.rows([]string{"ID", "ADDRESS", "ROLE", "APPLIED", "HEAD HASH", "ERROR"}, rows)
				return nil
			})
		},
	}
}
