package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func newProcessCommand(a *app) *cobra.Command {
	return newGroup("process", "List and configure the processes a unit's agent supervises",
		`A process is one method for one domain on one unit (e.g. syslogforwarding
for nginx on ship1), with its stream process-<unit>.<method>.<domain>. The
control plane says what it wants (desired status, restart policy, config);
the agent reports what is.`,
		newProcessLsCommand(a), newProcessShowCommand(a), newProcessSetCommand(a),
	)
}

func newProcessLsCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "ls UNIT",
		Aliases: []string{"list"},
		Short:   "List a unit's processes",
		Example: `  logbook process ls ship1`,
		Args:    exactArgs("UNIT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.processes.ListProcesses, &logbookv1.ListProcessesRequest{Unit: args[0]}, func(res *logbookv1.ListProcessesResponse) error {
					if len(res.GetProcesses()) == 0 {
						p.note("No processes on unit %s.", args[0])
						return nil
					}
					var rows [][]string
					for _, pr := range res.GetProcesses() {
						rows = append(rows, []string{pr.GetMethod(), pr.GetDomain(), pr.GetDesiredStatus(), pr.GetReportedStatus(),
							pr.GetRestartPolicy(), fmt.Sprint(pr.GetRestartCount()), fmt.Sprint(pr.GetConfigRevision()), ago(pr.GetReportedAt(), p.now)})
					}
					p.rows([]string{"METHOD", "DOMAIN", "DESIRED", "REPORTED", "RESTART", "RESTARTS", "CONFIG REV", "REPORTED AT"}, rows)
					return nil
				})
			})
		},
	}
}

func newProcessShowCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "show UNIT METHOD DOMAIN",
		Short:   "Show a process's state, rebuilt from its stream",
		Example: `  logbook process show ship1 syslogforwarding nginx`,
		Args:    exactArgs("UNIT", "METHOD", "DOMAIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.processes.GetProcess, &logbookv1.GetProcessRequest{Unit: args[0], Method: args[1], Domain: args[2]}, func(res *logbookv1.GetProcessResponse) error {
					s := res.GetState()
					p.fields([][2]string{
						{"Process", s.GetId()},
						{"Version", fmt.Sprint(res.GetVersion())},
						{"Desired status", enumText(s.GetDesiredStatus())},
						{"Restart policy", enumText(s.GetRestartPolicy())},
						{"Config", labelsText(s.GetConfig())},
						{"Config revision", fmt.Sprint(s.GetConfigRevision())},
						{"Desired changed", joinNonEmpty(stamp(s.GetDesiredChangedAt(), p.now), "by", s.GetDesiredChangedBy())},
						{"Reported status", enumText(s.GetReportedStatus())},
						{"Restarts", fmt.Sprint(s.GetRestartCount())},
						{"Exit code", fmt.Sprint(s.GetExitCode())},
						{"Detail", s.GetDetail()},
						{"Reported at", stamp(s.GetReportedAt(), p.now)},
					})
					return nil
				})
			})
		},
	}
}

func newProcessSetCommand(a *app) *cobra.Command {
	var desired, restart string
	var config []string
	var clearConfig bool
	c := &cobra.Command{
		Use:   "set UNIT METHOD DOMAIN [--desired running|stopped] [--restart always|on-failure|never] [--config k=v]...",
		Short: "Set what a process should do",
		Long: `set changes the desired side of a process: whether it runs, when the agent
restarts it, and its configuration. Only the flags given change anything;
--config replaces the whole configuration (give every key), and
--clear-config empties it.`,
		Example: `  logbook process set ship1 syslogforwarding nginx --desired running --restart on-failure
  logbook process set ship1 syslogforwarding nginx --config target=udp://logs:514 --config level=info
  logbook process set ship1 syslogforwarding nginx --desired stopped`,
		Args: exactArgs("UNIT", "METHOD", "DOMAIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &logbookv1.SetProcessRequest{Unit: args[0], Method: args[1], Domain: args[2]}
			var err error
			if cmd.Flags().Changed("desired") {
				if req.DesiredStatus, err = parseProcessDesired(desired); err != nil {
					return newUsageError(cmd, err)
				}
			}
			if cmd.Flags().Changed("restart") {
				if req.RestartPolicy, err = parseRestartPolicy(restart); err != nil {
					return newUsageError(cmd, err)
				}
			}
			if len(config) > 0 && clearConfig {
				return usageErrorf(cmd, "--config and --clear-config exclude each other")
			}
			if len(config) > 0 || clearConfig {
				if req.Config, err = parseKeyValues("--config", config); err != nil {
					return newUsageError(cmd, err)
				}
				req.SetConfig = true
			}
			if req.DesiredStatus == 0 && req.RestartPolicy == 0 && !req.SetConfig {
				return usageErrorf(cmd, "nothing to set: give --desired, --restart, --config or --clear-config")
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.processes.SetProcess, req)
				if err != nil {
					return err
				}
				p.written(res, res.GetAppended(), fmt.Sprintf("process/%s.%s.%s", args[0], args[1], args[2]), "updated")
				return nil
			})
		},
	}
	f := c.Flags()
	f.StringVar(&desired, "desired", "", "desired status: running or stopped")
	f.StringVar(&restart, "restart", "", "restart policy: always, on-failure or never")
	f.StringArrayVar(&config, "config", nil, "configuration key=value (repeatable; replaces the whole configuration)")
	f.BoolVar(&clearConfig, "clear-config", false, "remove every configuration key")
	return c
}
