package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The postgres subject, run only when LOGBOOK_BENCH_POSTGRES holds a
// connection URL: one row per event in a table with unique (stream,
// version), the classic "event store in PostgreSQL" schema, with the
// server's default synchronous_commit=on (durable before the ack).
//
// Each writer holds its own pgx connection for the whole measurement, which
// is what a pool of W connections does under W busy writers, minus the
// acquire overhead (and without pulling pgxpool's dependencies into go.mod).

const pgTable = "logbook_bench_events"

func postgresAppend(ctx context.Context, cfg *Config, writers int) (stats LoadStats, err error) {
	admin, err := pgx.Connect(ctx, cfg.Postgres)
	if err != nil {
		return LoadStats{}, fmt.Errorf("postgres connect: %w", err)
	}
	defer func() {
		_, derr := admin.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+pgTable)
		err = errors.Join(err, derr, admin.Close(context.WithoutCancel(ctx)))
	}()
	if _, err := admin.Exec(ctx, "DROP TABLE IF EXISTS "+pgTable); err != nil {
		return LoadStats{}, err
	}
	if _, err := admin.Exec(ctx, "CREATE TABLE "+pgTable+` (
		stream text NOT NULL,
		version bigint NOT NULL,
		data bytea NOT NULL,
		UNIQUE (stream, version))`); err != nil {
		return LoadStats{}, err
	}

	var conns []*pgx.Conn
	defer func() {
		for _, c := range conns {
			c.Close(context.WithoutCancel(ctx))
		}
	}()
	data := payload(payloadBytes)
	return RunLoad(ctx, Load{
		Writers: writers,
		PerCall: 1,
		Warmup:  cfg.Warmup,
		Measure: cfg.Duration,
		NewOp: func(w int) (Op, error) {
			c, err := pgx.Connect(ctx, cfg.Postgres)
			if err != nil {
				return nil, fmt.Errorf("postgres connect: %w", err)
			}
			conns = append(conns, c)
			stream := fmt.Sprintf("bench-w%d", w)
			var version int64
			return func(ctx context.Context) error {
				if _, err := c.Exec(ctx, "INSERT INTO "+pgTable+" (stream, version, data) VALUES ($1, $2, $3)", stream, version+1, data); err != nil {
					return fmt.Errorf("insert %s version %d: %w", stream, version+1, err)
				}
				version++
				return nil
			}, nil
		},
	})
}
