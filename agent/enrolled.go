package agent

import (
	"errors"
	"os"
)

// Enrolled reports whether dataDir holds a stored enrolment, i.e. whether
// an agent opened on it needs no enrolment token.
func Enrolled(dataDir string) bool {
	_, err := os.Stat(enrolmentPath(dataDir))
	return !errors.Is(err, os.ErrNotExist)
}
