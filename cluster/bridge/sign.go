package bridge

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// SignCommand builds the EdgeCommand for a UnitCommandIssued event of unit
// unitName and signs it with the control plane's key. A signature the
// issuer put into the event is ignored: the agent trusts only key.
// It fails when the event's method or domain are not subject-safe, it has no
// deadline, or key is not an ed25519 private key.
func SignCommand(unitName string, issued *logbookv1.UnitCommandIssued, key ed25519.PrivateKey) (*logbookv1.EdgeCommand, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("bridge: sign command: key is %d bytes, want an ed25519 private key (%d)", len(key), ed25519.PrivateKeySize)
	}
	if _, err := CommandSubject(unitName, issued.GetMethod(), issued.GetDomain()); err != nil {
		return nil, fmt.Errorf("bridge: sign command %s: %w", issued.GetCommandId(), err)
	}
	if issued.GetCommandId() == "" || issued.GetDeadline() == nil {
		return nil, errors.New("bridge: sign command: no command id or no deadline")
	}
	c := &logbookv1.EdgeCommand{
		Unit:      unitName,
		CommandId: issued.GetCommandId(),
		Method:    issued.GetMethod(),
		Domain:    issued.GetDomain(),
		Args:      slices.Clone(issued.GetArgs()),
		Payload:   bytes.Clone(issued.GetPayload()),
		Deadline:  proto.CloneOf(issued.GetDeadline()),
		IssuedAt:  proto.CloneOf(issued.GetIssuedAt()),
		IssuedBy:  issued.GetIssuedBy(),
	}
	c.Sign(key)
	return c, nil
}
