package main

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/spf13/cobra"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func newClusterCommand(a *app) *cobra.Command {
	return newGroup("cluster", "Show and change the control-plane cluster",
		`Several control-plane nodes (logbook serve --cluster) replicate the log with
raft; the leader runs the NATS bridge and every write goes through its log.
Nodes join with logbook serve --join; remove and transfer change the
membership and the leadership.`,
		newClusterStatusCommand(a),
		newClusterRemoveCommand(a),
		newClusterTransferCommand(a),
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
				return show(ctx, c, p, c.cluster.ClusterStatus, &logbookv1.ClusterStatusRequest{}, func(res *logbookv1.ClusterStatusResponse) error {
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
			})
		},
	}
}

func newClusterRemoveCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NODE-ID",
		Short: "Take a node out of the cluster",
		Long: `remove takes a node out of the raft configuration, for good: stop its process
and wipe its data directory's cluster/ before it ever joins again. Removing
a node of three leaves two, which tolerate no further failure: add a
replacement with logbook serve --join.`,
		Example: `  logbook cluster remove cp3`,
		Args:    checkedArgs(exactArgs("NODE-ID")),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.cluster.RemoveNode, &logbookv1.RemoveNodeRequest{Id: args[0]}, func(res *logbookv1.RemoveNodeResponse) error {
					p.f("node %s removed from the cluster\n", args[0])
					return nil
				})
			})
		},
	}
}

func newClusterTransferCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "transfer [NODE-ID]",
		Short: "Hand the leadership to another node",
		Long: `transfer hands the leadership to the named node, or to the most up-to-date
follower when none is named, and waits until it leads: do it before
maintenance of the leader's machine. The bridge moves with the leadership.`,
		Example: `  logbook cluster transfer
  logbook cluster transfer cp2`,
		Args: checkedArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.cluster.TransferLeadership, &logbookv1.TransferLeadershipRequest{Id: id}, func(res *logbookv1.TransferLeadershipResponse) error {
					p.f("leader: %s\n", res.GetLeader())
					return nil
				})
			})
		},
	}
}
