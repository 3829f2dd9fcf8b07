package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/postgres"
	"github.com/logbook-fleet/logbook/projections/sinktest"
)

func newStore(t testing.TB) events.Store {
	st, err := embedded.Open(context.Background(), t.TempDir(), embedded.InMemory())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	for _, copyMin := range []int{0, 2000} {
		t.Run(fmt.Sprintf("copy%d", copyMin), func(t *testing.T) {
			sinktest.Run(t, sinktest.Config{
				NewSink: func(t testing.TB) projections.Sink {
					s, err := postgres.Open(context.Background(), sinktest.PostgresSchema(t), postgres.WithCopyThreshold(copyMin))
					if err != nil {
						t.Fatal(err)
					}
					return s
				},
				NewStore: newStore,
			})
		})
	}
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	for _, raw := range []string{"postgres:///nohost", "postgres://127.0.0.1:5432/test?pool_max_conns=zero"} {
		if _, err := projections.OpenSink(ctx, raw); !errors.Is(err, projections.ErrBadURL) {
			t.Errorf("OpenSink(%q) = %v, want ErrBadURL", raw, err)
		}
	}
	s, err := projections.OpenSink(ctx, sinktest.PostgresSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.Dialect() != projections.Postgres {
		t.Fatal(s.Dialect())
	}
	s.Close()
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: slow")
	}
	sinkURL := sinktest.PostgresSchema(t)
	u, _ := url.Parse(sinkURL)
	app := "crash_" + u.Query().Get("search_path")
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	sinktest.RunCrash(t, sinktest.CrashConfig{
		SinkURL:      sinkURL,
		ChildSinkURL: u.String(),
		// Wait until the killed child's sessions are gone: one may still
		// be committing the COMMIT the child sent before it died.
		Settle: func(ctx context.Context) error {
			conn, err := pgx.Connect(ctx, sinktest.PostgresURL())
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			for {
				var n int
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n); err != nil {
					return err
				}
				if n == 0 {
					return nil
				}
				time.Sleep(5 * time.Millisecond)
			}
		},
		ChildTest: "TestCrashChild",
		OpenStore: func(ctx context.Context, dir string) (events.Store, error) { return embedded.Open(ctx, dir) },
	})
}

func TestCrashChild(t *testing.T) {
	sinktest.CrashChild(t, func(ctx context.Context, dir string) (events.Store, error) { return embedded.Open(ctx, dir) })
}
