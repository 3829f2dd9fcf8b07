package readmodel

import (
	"context"

	"github.com/logbook-fleet/logbook/projections"
)

// FleetCounts are the fleet's unit counts.
type FleetCounts struct {
	// Units is every registered unit that is not decommissioned; Connected
	// those of them connected now.
	Units, Connected int
}

// CountUnits returns the fleet's unit counts.
func CountUnits(ctx context.Context, rd Reader) (FleetCounts, error) {
	var c FleetCounts
	err := view(ctx, rd, FleetName, func(q projections.Querier) error {
		return q.QueryRow(ctx, "SELECT COUNT(*), COALESCE(SUM(CASE WHEN connected THEN 1 ELSE 0 END), 0) FROM "+
			q.Table("units")+" WHERE decommissioned = ?", false).Scan(&c.Units, &c.Connected)
	})
	return c, err
}

// CountCommands returns how many commands the history holds in each
// status (CommandIssued ... CommandCancelled); statuses without commands
// are absent.
func CountCommands(ctx context.Context, rd Reader) (map[string]int, error) {
	out := map[string]int{}
	err := view(ctx, rd, CommandsName, func(q projections.Querier) error {
		rows, err := q.Query(ctx, "SELECT status, COUNT(*) FROM "+q.Table("commands")+" GROUP BY status")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var status string
			var n int
			if err := rows.Scan(&status, &n); err != nil {
				return err
			}
			out[status] = n
		}
		return rows.Err()
	})
	return out, err
}
