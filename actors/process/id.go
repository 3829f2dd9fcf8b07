package process

import (
	"fmt"
	"strings"

	"github.com/logbook-fleet/logbook/actors/unit"
)

// Category is the stream category of processes: process nginx of method
// syslogforwarding on unit ship1 lives in
// "process-ship1.syslogforwarding.nginx".
const Category = "process"

// ID returns the entity id "<unit>.<method>.<domain>". Each part must be a
// subject token (unit.ValidateToken; the unit part unit.ValidateName), so
// the id splits back unambiguously. Errors wrap ErrInvalidID.
func ID(unitName, method, domain string) (string, error) {
	for _, p := range []struct{ what, v string }{{"unit", unitName}, {"method", method}, {"domain", domain}} {
		if err := unit.ValidateToken(p.v); err != nil {
			return "", fmt.Errorf("%w: %s %w", ErrInvalidID, p.what, err)
		}
	}
	return unitName + "." + method + "." + domain, nil
}

// StreamName returns the stream "process-<unit>.<method>.<domain>". Errors
// wrap ErrInvalidID.
func StreamName(unitName, method, domain string) (string, error) {
	id, err := ID(unitName, method, domain)
	if err != nil {
		return "", err
	}
	return Category + "-" + id, nil
}

// ParseID splits an entity id made by ID. Errors wrap ErrInvalidID.
func ParseID(id string) (unitName, method, domain string, err error) {
	parts := strings.Split(id, ".")
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("%w %q: want <unit>.<method>.<domain>, got %d dot-separated parts", ErrInvalidID, id, len(parts))
	}
	if _, err := ID(parts[0], parts[1], parts[2]); err != nil {
		return "", "", "", err
	}
	return parts[0], parts[1], parts[2], nil
}

// ParseStreamName splits a stream name made by StreamName. Errors wrap
// ErrInvalidID.
func ParseStreamName(stream string) (unitName, method, domain string, err error) {
	id, ok := strings.CutPrefix(stream, Category+"-")
	if !ok {
		return "", "", "", fmt.Errorf("%w: stream %q is not in category %q", ErrInvalidID, stream, Category)
	}
	return ParseID(id)
}
