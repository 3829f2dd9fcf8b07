package ingest_test

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logbook-fleet/logbook/api/ingest"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/projections/sqlite"
)

// The server mounts the Service's handler and registers it as a
// Prometheus collector; Authorize checks the API key.
func Example() {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "ingest-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	store, err := embedded.Open(ctx, filepath.Join(tmp, "log"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	sink, err := sqlite.Open(ctx, filepath.Join(tmp, "read.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()

	svc, err := ingest.New(ingest.Config{
		Store:    store,
		Readings: sink, // in a server: readmodel.Guard(runner, sink)
		Authorize: func(r *http.Request) (string, error) {
			if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer k3y")) != 1 {
				return "", fmt.Errorf("%w: send Authorization: Bearer <API key>", ingest.ErrUnauthenticated)
			}
			return "ship-uplink", nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	prometheus.NewRegistry().MustRegister(svc)
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()

	body := `{"sensor":"temp","value":21.5,"timestamp":"2026-11-22T10:00:00Z"}
{"sensor":"temp","value":"warm","timestamp":"2026-11-22T10:01:00Z"}
`
	req, _ := http.NewRequest(http.MethodPost, srv.URL+ingest.PathIngest+"?unit=ship1", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer k3y")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(resp.Status, " ", string(answer))
	// Output:
	// 400 Bad Request {"unit":"ship1","lines":2,"accepted":1,"duplicates":0,"invalid":1,"errors":[{"line":2,"error":"\"value\" must be a number, got a string"}]}
}
