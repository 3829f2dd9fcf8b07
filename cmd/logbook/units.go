package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/logbook-fleet/logbook/actors/unit"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func newUnitCommand(a *app) *cobra.Command {
	return newGroup("unit", "List, register and change edge units",
		`A unit is one edge device (a ship, a gateway, a sensor box) with its own
stream unit-<name> in the log. Its desired release is its pinned release if
it is pinned, else its channel's current release; its agent reports what it
runs.`,
		newUnitLsCommand(a), newUnitShowCommand(a), newUnitRegisterCommand(a),
		newUnitLabelCommand(a), newUnitPinCommand(a), newUnitUnpinCommand(a),
		newUnitAssignCommand(a), newUnitDecommissionCommand(a), newUnitEnrolTokenCommand(a),
	)
}

func newUnitLsCommand(a *app) *cobra.Command {
	var req logbookv1.ListUnitsRequest
	var connected bool
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List units",
		Long: `ls lists the units from the fleet read model, by name. --selector takes
kubectl's label selector syntax: "k=v", "k!=v", "k" (has the label), "!k"
(lacks it), comma-separated (all must match).`,
		Example: `  logbook unit ls
  logbook unit ls --selector site=north,role!=spare
  logbook unit ls --channel stable --connected
  logbook unit ls --connected=false -o json`,
		Args: checkedArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("connected") {
				req.Connected = &connected
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				var all []*logbookv1.UnitSummary
				for {
					res, err := unary(ctx, c, c.units.ListUnits, &req)
					if err != nil {
						return err
					}
					all = append(all, res.GetUnits()...)
					if res.GetNext() == "" {
						break
					}
					req.After = res.GetNext()
				}
				if !p.table() {
					p.message(&logbookv1.ListUnitsResponse{Units: all})
					return nil
				}
				if len(all) == 0 {
					p.note("No units found.")
					return nil
				}
				rows := make([][]string, len(all))
				for i, u := range all {
					conn := yesNo(u.GetConnected())
					if u.GetDecommissioned() {
						conn = "decommissioned"
					}
					rows[i] = []string{u.GetName(), u.GetPlatform(), u.GetChannel(), u.GetDesiredRelease(),
						u.GetReportedRelease(), conn, ago(u.GetLastSeen(), p.now), labelsText(u.GetLabels())}
				}
				p.rows([]string{"NAME", "PLATFORM", "CHANNEL", "DESIRED", "REPORTED", "CONNECTED", "LAST SEEN", "LABELS"}, rows)
				return nil
			})
		},
	}
	f := c.Flags()
	f.StringVarP(&req.Selector, "selector", "l", "", "label selector, e.g. site=north,role!=spare")
	f.StringVar(&req.Channel, "channel", "", "only units on this channel")
	f.BoolVar(&connected, "connected", false, "only connected units (--connected=false: only disconnected ones)")
	f.BoolVar(&req.IncludeDecommissioned, "all", false, "include decommissioned units")
	return c
}

func newUnitShowCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show UNIT",
		Short: "Show a unit's state, rebuilt from its stream",
		Long: `show prints the unit entity's current state, rebuilt from the log: labels,
channel, pin, desired and reported release, connectivity, processes and
remote commands.`,
		Example: `  logbook unit show ship1
  logbook unit show ship1 -o yaml`,
		Args: exactArgs("UNIT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.units.GetUnit, &logbookv1.GetUnitRequest{Unit: args[0]}, func(res *logbookv1.GetUnitResponse) error {
					printUnit(p, res.GetState(), res.GetVersion())
					return nil
				})
			})
		},
	}
}

func printUnit(p *display, u *logbookv1.UnitState, version uint64) {
	status := enumText(u.GetStatus())
	if status == "" {
		status = "not registered"
	}
	p.fields([][2]string{
		{"Name", u.GetName()},
		{"Status", status},
		{"Version", fmt.Sprint(version)},
		{"Platform", u.GetPlatform()},
		{"Labels", labelsText(u.GetLabels())},
		{"Registered", joinNonEmpty(stamp(u.GetRegisteredAt(), p.now), "by", u.GetRegisteredBy())},
		{"Channel", u.GetChannel()},
		{"Channel release", u.GetChannelRelease()},
		{"Pinned release", u.GetPinnedRelease()},
		{"Desired release", u.GetDesiredRelease()},
		{"Reported release", u.GetReportedRelease()},
		{"Connected", yesNo(u.GetConnected())},
		{"Agent version", u.GetAgentVersion()},
		{"Last seen", stamp(u.GetLastSeen(), p.now)},
		{"Decommissioned", stamp(u.GetDecommissionedAt(), p.now)},
	})
	if len(u.GetProcesses()) > 0 {
		p.f("\nProcesses:\n")
		var rows [][]string
		for _, k := range sortedKeys(u.GetProcesses()) {
			pr := u.GetProcesses()[k]
			rows = append(rows, []string{pr.GetMethod(), pr.GetDomain(), enumText(pr.GetStatus()), fmt.Sprint(pr.GetRestartCount())})
		}
		p.rows([]string{"METHOD", "DOMAIN", "STATUS", "RESTARTS"}, rows)
	}
	cmds := append(append([]*logbookv1.UnitCommand{}, u.GetFinished()...), u.GetPending()...)
	if len(cmds) > 0 {
		p.f("\nCommands (recent and pending):\n")
		rows := make([][]string, len(cmds))
		for i, c := range cmds {
			rows[i] = []string{c.GetCommandId(), c.GetMethod() + "." + c.GetDomain(), truncate(strings.Join(c.GetArgs(), " "), 40),
				enumText(c.GetStatus()), exitText(c), ago(c.GetIssuedAt(), p.now), c.GetIssuedBy()}
		}
		p.rows([]string{"ID", "METHOD", "ARGS", "STATUS", "EXIT", "ISSUED", "BY"}, rows)
	}
}

func exitText(c *logbookv1.UnitCommand) string {
	switch c.GetStatus() {
	case logbookv1.UnitCommandStatus_UNIT_COMMAND_STATUS_SUCCEEDED, logbookv1.UnitCommandStatus_UNIT_COMMAND_STATUS_FAILED:
		return fmt.Sprint(c.GetExitCode())
	}
	return ""
}

// joinNonEmpty joins "a by b" when b is set, else a.
func joinNonEmpty(a, sep, b string) string {
	if a == "" || b == "" {
		return a
	}
	return a + " " + sep + " " + b
}

func newUnitRegisterCommand(a *app) *cobra.Command {
	var req logbookv1.RegisterUnitRequest
	var labels []string
	c := &cobra.Command{
		Use:   "register UNIT",
		Short: "Register a unit",
		Long: `register creates the unit entity. Names are case-sensitive and subject-safe:
letters, digits, '-' and '_' (no spaces, dots or wildcards). Then create an
enrolment token (logbook unit enrol-token) for the unit's agent.`,
		Example: `  logbook unit register ship1 --platform linux/arm64 --label site=north --label role=tanker
  logbook unit register ship2 --channel stable`,
		Args: exactArgs("UNIT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := parseKeyValues("--label", labels)
			if err == nil {
				err = checkUnitLabels(m, nil)
			}
			if err != nil {
				return newUsageError(cmd, err)
			}
			req.Unit, req.Labels = args[0], m
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.units.RegisterUnit, &req)
				if err != nil {
					return err
				}
				p.written(res, res.GetAppended(), "unit/"+req.Unit, "registered")
				return nil
			})
		},
	}
	f := c.Flags()
	f.StringVar(&req.Platform, "platform", "", `platform, "os/arch" (e.g. linux/arm64): picks release artifacts`)
	f.StringArrayVarP(&labels, "label", "l", nil, "label key=value (repeatable)")
	f.StringVar(&req.Channel, "channel", "", "channel to follow right away")
	return c
}

func newUnitLabelCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "label UNIT KEY=VALUE... | KEY-...",
		Short: "Set or remove a unit's labels",
		Long: `label sets labels ("key=value", overwriting the value) and removes them
("key-"), in one write, like kubectl label.`,
		Example: `  logbook unit label ship1 site=north role=tanker
  logbook unit label ship1 role-
  logbook unit label ship1 site=south spare-`,
		Args: checkedArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ch, err := parseLabelChanges(args[1:])
			if err == nil {
				err = checkUnitLabels(ch.Set, ch.Remove)
			}
			if err != nil {
				return newUsageError(cmd, err)
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.units.SetUnitLabels, &logbookv1.SetUnitLabelsRequest{Unit: args[0], Set: ch.Set, Remove: ch.Remove})
				if err != nil {
					return err
				}
				p.written(res, res.GetAppended(), "unit/"+args[0], "labelled")
				return nil
			})
		},
	}
}

func newUnitPinCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "pin UNIT RELEASE",
		Short: "Pin a unit to a release, whatever its channel says",
		Long: `pin makes RELEASE the unit's desired release until unpin, regardless of its
channel. The release must be published and not yanked.`,
		Example: `  logbook unit pin ship1 2026.11.3`,
		Args:    exactArgs("UNIT", "RELEASE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.units.PinUnitRelease, &logbookv1.PinUnitReleaseRequest{Unit: args[0], Release: args[1]})
				if err != nil {
					return err
				}
				p.written(res, res.GetAppended(), "unit/"+args[0], "pinned to "+args[1])
				return nil
			})
		},
	}
}

func newUnitUnpinCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "unpin UNIT",
		Short:   "Remove a unit's pin: it follows its channel again",
		Example: `  logbook unit unpin ship1`,
		Args:    exactArgs("UNIT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.units.UnpinUnitRelease, &logbookv1.UnpinUnitReleaseRequest{Unit: args[0]})
				if err != nil {
					return err
				}
				p.written(res, res.GetAppended(), "unit/"+args[0], "unpinned")
				return nil
			})
		},
	}
}

func newUnitAssignCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "assign UNIT CHANNEL",
		Short: "Make a unit follow a channel",
		Long: `assign makes the unit follow CHANNEL: unless pinned, its desired release
becomes the channel's current release, now and at every promotion.`,
		Example: `  logbook unit assign ship1 stable`,
		Args:    exactArgs("UNIT", "CHANNEL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.units.AssignUnitChannel, &logbookv1.AssignUnitChannelRequest{Unit: args[0], Channel: args[1]})
				if err != nil {
					return err
				}
				p.written(res, res.GetAppended(), "unit/"+args[0], "assigned to channel "+args[1])
				return nil
			})
		},
	}
}

func newUnitDecommissionCommand(a *app) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   "decommission UNIT --reason TEXT",
		Short: "Retire a unit for good",
		Long: `decommission retires the unit: its pending commands are cancelled, every
later command is refused, and its name is never reused. Its history stays.`,
		Example: `  logbook unit decommission ship7 --reason "sold"`,
		Args:    exactArgs("UNIT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageErrorf(cmd, "--reason is required: say why the unit is retired")
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.units.DecommissionUnit, &logbookv1.DecommissionUnitRequest{Unit: args[0], Reason: reason})
				if err != nil {
					return err
				}
				p.written(res, res.GetAppended(), "unit/"+args[0], "decommissioned")
				return nil
			})
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why the unit is retired (required)")
	return c
}

func newUnitEnrolTokenCommand(a *app) *cobra.Command {
	ttl := durationFlag(24 * time.Hour)
	c := &cobra.Command{
		Use:     "enrol-token UNIT",
		Aliases: []string{"enroll-token"},
		Short:   "Create a one-time enrolment token for a unit's agent",
		Long: `enrol-token creates a one-time token with which the unit's logbook-agent
enrols on its first start: the agent generates its key, sends the token and
receives its NATS credentials. It prints the token once and the agent
command line that uses it.`,
		Example: `  logbook unit enrol-token ship1
  logbook unit enrol-token ship1 --ttl 2h -o json`,
		Args: exactArgs("UNIT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			secs, err := seconds("--ttl", time.Duration(ttl))
			if err != nil {
				return newUsageError(cmd, err)
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.units.CreateEnrolmentToken, &logbookv1.CreateEnrolmentTokenRequest{Unit: args[0], TtlSeconds: secs}, func(res *logbookv1.CreateEnrolmentTokenResponse) error {
					p.f("Enrolment token for unit %s (one use, expires %s):\n\n  %s\n\n", args[0], stamp(res.GetExpiresAt(), p.now), res.GetToken())
					p.f("Start the agent on the unit with:\n\n%s\n", agentCommandLine(args[0], res.GetToken(), res.GetNatsUrls()))
					p.note("The token is shown once; later starts of the agent need no token.")
					return nil
				})
			})
		},
	}
	c.Flags().Var(&ttl, "ttl", "how long the token may be used (e.g. 30m, 24h, 7d)")
	return c
}

// agentCommandLine is the logbook-agent invocation that enrols unit with
// token against the NATS URLs (cmd/logbook-agent's flags).
func agentCommandLine(unit, token string, natsURLs []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  LOGBOOK_AGENT_TOKEN=%s \\\n    logbook-agent --data-dir /var/lib/logbook-agent --unit %s", shellQuote(token), shellQuote(unit))
	if len(natsURLs) == 0 {
		natsURLs = []string{"nats://CONTROL-PLANE:4222"}
	}
	for _, u := range natsURLs {
		fmt.Fprintf(&b, " \\\n      --server %s", shellQuote(u))
	}
	b.WriteString(" \\\n      --allow uptime\n")
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@+,", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// checkUnitLabels checks labels to set and keys to remove with the unit
// entity's own rule, so a bad label is a usage error here rather than a
// refusal from the server.
func checkUnitLabels(set map[string]string, remove []string) error {
	for _, k := range sortedKeys(set) {
		if err := unit.ValidateLabel(k, set[k]); err != nil {
			return err
		}
	}
	for _, k := range remove {
		if err := unit.ValidateLabel(k, ""); err != nil {
			return err
		}
	}
	return nil
}
