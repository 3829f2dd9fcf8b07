package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/logbook-fleet/logbook/api"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// roles are the API token roles.
var roles = []string{api.RoleAdmin, api.RoleOperator, api.RoleRead, api.RoleIngest}

func newTokenCommand(a *app) *cobra.Command {
	return newGroup("token", "Create, list and revoke API tokens",
		`API tokens authenticate callers of the API and of POST /ingest. Roles:
admin (everything), operator (everything but tokens), read (reads only),
ingest (POST /ingest only). The server stores only a token's hash: its
secret is shown once, at creation.`,
		newTokenCreateCommand(a), newTokenLsCommand(a), newTokenRevokeCommand(a),
	)
}

func newTokenCreateCommand(a *app) *cobra.Command {
	var role string
	var ttl durationFlag
	c := &cobra.Command{
		Use:   "create NAME --role admin|operator|read|ingest [--ttl DURATION]",
		Short: "Create an API token and print its secret once",
		Example: `  logbook token create alice --role operator --ttl 90d
  logbook token create dashboards --role read
  TOKEN=$(logbook token create ship-ingest --role ingest -o json | jq -r .token)`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(roles, role) {
				return usageErrorf(cmd, "--role %q: want one of %s", role, strings.Join(roles, ", "))
			}
			secs, err := seconds("--ttl", time.Duration(ttl))
			if err != nil {
				return newUsageError(cmd, err)
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.tokens.CreateToken, &logbookv1.CreateTokenRequest{Name: args[0], Role: role, TtlSeconds: secs})
				if err != nil {
					return err
				}
				p.note("Save this token now: it is not shown again.")
				if !p.table() {
					p.message(res)
					return nil
				}
				info := res.GetInfo()
				expires := "never"
				if info.GetExpiresAt() != nil {
					expires = stamp(info.GetExpiresAt(), p.now)
				}
				p.f("token %s (%s, role %s, expires %s):\n%s\n", info.GetId(), info.GetName(), info.GetRole(), expires, res.GetToken())
				return nil
			})
		},
	}
	c.Flags().StringVar(&role, "role", "", "role: admin, operator, read or ingest (required)")
	c.Flags().Var(&ttl, "ttl", "how long the token is valid, e.g. 24h or 90d (default: no expiry)")
	return c
}

func newTokenLsCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List API tokens (never their secrets)",
		Example: `  logbook token ls`,
		Args:    checkedArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.tokens.ListTokens, &logbookv1.ListTokensRequest{}, func(res *logbookv1.ListTokensResponse) error {
					var rows [][]string
					for _, t := range res.GetTokens() {
						state := "active"
						switch {
						case t.GetRevoked():
							state = "revoked"
						case t.GetExpiresAt() != nil && !t.GetExpiresAt().AsTime().After(p.now):
							state = "expired"
						}
						rows = append(rows, []string{t.GetId(), t.GetName(), t.GetRole(), state, ago(t.GetCreatedAt(), p.now), t.GetCreatedBy(), ago(t.GetExpiresAt(), p.now)})
					}
					p.rows([]string{"ID", "NAME", "ROLE", "STATE", "CREATED", "BY", "EXPIRES"}, rows)
					return nil
				})
			})
		},
	}
}

func newTokenRevokeCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke an API token",
		Example: `  logbook token revoke 0193f0a4c1e2`,
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.tokens.RevokeToken, &logbookv1.RevokeTokenRequest{Id: args[0]})
				if err != nil {
					return err
				}
				p.written(res, res.GetAppended(), "token/"+args[0], "revoked")
				return nil
			})
		},
	}
}

func newWhoAmICommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the server, the token in use and its role",
		Example: `  logbook whoami
  logbook whoami --data-dir /var/lib/logbook`,
		Args: checkedArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.tokens.WhoAmI, &logbookv1.WhoAmIRequest{}, func(res *logbookv1.WhoAmIResponse) error {
					t := res.GetToken()
					p.fields([][2]string{
						{"Server", fmt.Sprintf("%s (from %s)", c.conn.Server, c.conn.ServerSource)},
						{"Token", fmt.Sprintf("%s %s (from %s)", t.GetId(), t.GetName(), c.conn.TokenSource)},
						{"Role", t.GetRole()},
						{"Created", joinNonEmpty(stamp(t.GetCreatedAt(), p.now), "by", t.GetCreatedBy())},
						{"Expires", stamp(t.GetExpiresAt(), p.now)},
					})
					return nil
				})
			})
		},
	}
}

func newLoginCommand(a *app) *cobra.Command {
	var noVerify bool
	c := &cobra.Command{
		Use:   "login --server URL --token TOKEN",
		Short: "Save the server and token in the config file",
		Long: `login checks the token against the server (unless --no-verify) and saves
both in the config file ($LOGBOOK_CONFIG or ~/.config/logbook/config.yaml,
readable by you only), so later commands need neither flag. Without --token
it takes $LOGBOOK_TOKEN or the admin token of --data-dir.`,
		Example: `  logbook login --server http://cp.example:8080 --token "$TOKEN"
  logbook login --data-dir /var/lib/logbook`,
		Args: checkedArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				if c.conn.Token == "" {
					return newUsageError(cmd, errors.New("no token: pass --token, set LOGBOOK_TOKEN or --data-dir"))
				}
				var who *logbookv1.WhoAmIResponse
				if !noVerify {
					res, err := unary(ctx, c, c.tokens.WhoAmI, &logbookv1.WhoAmIRequest{})
					if err != nil {
						return err
					}
					who = res
				}
				path, err := configPath(a.getenv)
				if err != nil {
					return err
				}
				if err := writeConfig(path, fileConfig{Server: c.conn.Server, Token: c.conn.Token}); err != nil {
					return err
				}
				if who != nil {
					p.f("Logged in to %s as %s (role %s); saved in %s\n", c.conn.Server, who.GetToken().GetName(), who.GetToken().GetRole(), path)
				} else {
					p.f("Saved %s in %s (not verified)\n", c.conn.Server, path)
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&noVerify, "no-verify", false, "save without checking the token with the server")
	return c
}
