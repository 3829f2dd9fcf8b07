package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// ConfigPayload is the payload (JSON) of a "config" command; the domain
// names the configuration (letters, digits, '-', '_'):
//
//	{"config": {"log_level": "debug"}, "feature_flags": {"new_ui": true}}
//
// The agent replaces <data>/config/<domain>.json with an AppliedConfig
// atomically (temporary file, fsync, rename, fsync of the directory) and
// reports the path and SHA-256 of what it wrote in the command's result.
type ConfigPayload struct {
	Config       map[string]string `json:"config"`
	FeatureFlags map[string]bool   `json:"feature_flags"`
}

// AppliedConfig is the content of <data>/config/<domain>.json.
type AppliedConfig struct {
	Domain       string            `json:"domain"`
	CommandID    string            `json:"command_id"`
	AppliedAt    time.Time         `json:"applied_at"`
	Config       map[string]string `json:"config"`
	FeatureFlags map[string]bool   `json:"feature_flags"`
}

type configMethod struct {
	dir string
}

func decodeConfig(payload []byte) (ConfigPayload, error) {
	var c ConfigPayload
	d := json.NewDecoder(bytes.NewReader(payload))
	d.DisallowUnknownFields()
	err := d.Decode(&c)
	return c, err
}

func (m *configMethod) check(cmd *logbookv1.EdgeCommand) error {
	if !safeName(cmd.GetDomain()) {
		return refuse("config name %q: want letters, digits, '-' and '_'", cmd.GetDomain())
	}
	if _, err := decodeConfig(cmd.GetPayload()); err != nil {
		return refuse("config %s: bad payload: %v", cmd.GetDomain(), err)
	}
	return nil
}

func (m *configMethod) run(_ context.Context, cmd *logbookv1.EdgeCommand) *logbookv1.AgentCommandResult {
	c, _ := decodeConfig(cmd.GetPayload()) // checked before
	applied := AppliedConfig{Domain: cmd.GetDomain(), CommandID: cmd.GetCommandId(), AppliedAt: time.Now().UTC(),
		Config: c.Config, FeatureFlags: c.FeatureFlags}
	b, err := json.MarshalIndent(applied, "", "  ")
	if err != nil {
		return &logbookv1.AgentCommandResult{ExitCode: 1, Error: err.Error()}
	}
	b = append(b, '\n')
	path := filepath.Join(m.dir, cmd.GetDomain()+".json")
	if err := WriteFileAtomic(path, b, 0o600); err != nil {
		return &logbookv1.AgentCommandResult{ExitCode: 1, Error: fmt.Sprintf("apply config: %v", err)}
	}
	return &logbookv1.AgentCommandResult{ExitCode: 0,
		Output: fmt.Appendf(nil, "applied %s sha256:%x", path, sha256.Sum256(b))}
}
