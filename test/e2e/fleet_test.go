package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOperatorJourney walks an operator's day through the real binaries:
// register units, enrol a real agent, run commands on it, change it and
// audit the change at a past time, verify the chain, ingest readings, then
// restart the control plane and find the unit reconnected without a new
// enrolment.
func TestOperatorJourney(t *testing.T) {
	data := t.TempDir()
	natsPort := freePort(t)
	s := startServer(t, data, natsPort)

	// Health and auth at the edge.
	if code, body := httpDo(t, http.MethodGet, s.api+"/healthz", "", "", nil); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	eventually(t, "/readyz 200", func() bool {
		code, _ := httpDo(t, http.MethodGet, s.api+"/readyz", "", "", nil)
		return code == http.StatusOK
	})
	if code, body := httpDo(t, http.MethodPost, s.api+"/logbook.v1.UnitService/ListUnits", "", "application/json", strings.NewReader("{}")); code != http.StatusUnauthorized {
		t.Fatalf("ListUnits without a token: %d %s, want 401", code, body)
	}
	if code, body := httpDo(t, http.MethodPost, s.api+"/logbook.v1.UnitService/ListUnits", "lbk_nope_nope", "application/json", strings.NewReader("{}")); code != http.StatusUnauthorized {
		t.Fatalf("ListUnits with a bad token: %d %s, want 401", code, body)
	}

	s.ok(t, "unit", "register", "ship1", "--label", "site=north", "--platform", "linux/amd64")
	s.ok(t, "unit", "register", "ship2", "--label", "site=south")
	if r := s.cli(t, "unit", "register", "ship1"); r.code == 0 || !strings.Contains(r.stderr, "ship1") {
		t.Fatalf("registering ship1 twice: exit %d, stderr %q; want an error naming the unit", r.code, r.stderr)
	}
	if r := s.cli(t, "unit", "register", "bad.name"); r.code == 0 {
		t.Fatalf("registering an invalid name succeeded: %+v", r)
	}

	// Enrol a real agent process.
	enrol := s.jsonOf(t, "unit", "enrol-token", "ship1")
	token, _ := field(enrol, "token").(string)
	if token == "" {
		t.Fatalf("enrol-token gave no token: %v", enrol)
	}
	startAgent(t, filepath.Join(t.TempDir(), "ship1"), "ship1", s.nats, token)
	eventually(t, "ship1 connected", func() bool { return s.connected(t, "ship1") })

	// Commands: a success with its output, a failure with a non-zero exit.
	out := s.ok(t, "cmd", "run", "ship1", "--", "echo", "hello", "fleet")
	if !strings.Contains(out, "hello fleet") {
		t.Fatalf("cmd run echo: output %q lacks the command's output", out)
	}
	if r := s.cli(t, "cmd", "run", "ship1", "--", "false"); r.code == 0 {
		t.Fatalf("cmd run false exited 0: %+v", r)
	}
	if r := s.cli(t, "cmd", "run", "ship1", "--", "rm", "-rf", "/"); r.code == 0 {
		t.Fatalf("a command off the allowlist exited 0: %+v", r)
	}

	// Time travel: the unit's labels before and after a change.
	time.Sleep(10 * time.Millisecond) // event times are the only clock: keep the change strictly later
	before := time.Now().UTC()
	time.Sleep(10 * time.Millisecond)
	s.ok(t, "unit", "label", "ship1", "site=south", "tier=edge")
	past := s.jsonOf(t, "audit", "unit-ship1", "--at", before.Format(time.RFC3339Nano))
	if !strings.Contains(stateJSON(t, past), `"north"`) || strings.Contains(stateJSON(t, past), `"edge"`) {
		t.Fatalf("audit at %v: state %s; want site=north and no tier", before, stateJSON(t, past))
	}
	now := s.jsonOf(t, "audit", "unit-ship1")
	if !strings.Contains(stateJSON(t, now), `"south"`) {
		t.Fatalf("audit now: state %s; want site=south", stateJSON(t, now))
	}
	diff := s.ok(t, "audit", "unit-ship1", "--at", before.Format(time.RFC3339Nano), "--diff", time.Now().UTC().Format(time.RFC3339Nano))
	if !strings.Contains(diff, "labels.site") || !strings.Contains(diff, "labels.tier") {
		t.Fatalf("audit --diff does not list the label changes:\n%s", diff)
	}

	s.ok(t, "verify")

	// Ingest with an ingest-only token.
	tok := s.jsonOf(t, "token", "create", "sensors", "--role", "ingest")
	ingestToken, _ := field(tok, "token").(string)
	if ingestToken == "" {
		t.Fatalf("token create gave no token: %v", tok)
	}
	body := `{"sensor":"temp","value":21.5,"timestamp":"2026-11-22T10:00:00Z"}
{"sensor":"temp","value":21.7,"timestamp":"2026-11-22T10:01:00Z"}
{"sensor":"temp","value":"warm","timestamp":"2026-11-22T10:02:00Z"}
{"sensor":"rpm","value":1200,"timestamp":"2026-11-22T10:00:00Z"}
`
	code, resp := httpDo(t, http.MethodPost, s.api+"/ingest?unit=ship1", ingestToken, "application/x-ndjson", strings.NewReader(body))
	if code != http.StatusBadRequest || !strings.Contains(resp, "3") {
		t.Fatalf("ingest with one bad line: %d %s; want 400 naming line 3", code, resp)
	}
	if code, resp := httpDo(t, http.MethodPost, s.api+"/ingest?unit=ship1", "", "application/x-ndjson", strings.NewReader(body)); code != http.StatusUnauthorized {
		t.Fatalf("ingest without a key: %d %s; want 401", code, resp)
	}
	// The ingest token cannot call the API.
	if code, resp := httpDo(t, http.MethodPost, s.api+"/logbook.v1.UnitService/ListUnits", ingestToken, "application/json", strings.NewReader("{}")); code != http.StatusForbidden {
		t.Fatalf("ListUnits with an ingest token: %d %s; want 403", code, resp)
	}
	adminToken := readAdminToken(t, data)
	eventually(t, "latest readings", func() bool {
		code, resp := httpDo(t, http.MethodGet, s.api+"/api/statistics/latest?unit=ship1", adminToken, "", nil)
		return code == http.StatusOK && strings.Contains(resp, "21.7") && strings.Contains(resp, "1200")
	})

	// A clean restart keeps everything; the agent comes back on its own
	// credentials, with no new enrolment.
	s.stop(t)
	s2 := startServer(t, data, natsPort)
	eventually(t, "ship1 reconnected after the restart", func() bool { return s2.connected(t, "ship1") })
	if out := s2.ok(t, "cmd", "run", "ship1", "--", "echo", "after", "restart"); !strings.Contains(out, "after restart") {
		t.Fatalf("cmd run after restart: %q", out)
	}
	s2.ok(t, "verify")
	s2.stop(t)
}

// stateJSON returns the entity state of an audit -o json answer.
func stateJSON(t *testing.T, m map[string]any) string {
	t.Helper()
	if s, ok := field(m, "state_json").(string); ok {
		return s
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func readAdminToken(t *testing.T, data string) string {
	t.Helper()
	b, err := readFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
