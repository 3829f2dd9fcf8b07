package dump

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrIncomplete: the day cannot be dumped yet because it has not ended,
	// by the Dumper's clock or in the log (the head event is not yet
	// Tolerance past the day's end). The error is an *IncompleteError.
	// Nothing was written. WithForce dumps such a day anyway.
	ErrIncomplete = errors.New("day not complete")
	// ErrBucket: the bucket URL is malformed or names no registered driver,
	// or the bucket cannot be reached, listed, read or written.
	ErrBucket = errors.New("blob bucket unavailable")
	// ErrInvalidManifest: a manifest in the bucket does not decode or
	// contradicts its name. Dumps never overwrite such a manifest; an
	// operator must look at it and delete it to have the day redone.
	ErrInvalidManifest = errors.New("invalid dump manifest")
	// ErrMismatch: Verify found a data object that does not match its
	// manifest (missing, wrong size, count, positions or digest).
	ErrMismatch = errors.New("dump does not match its manifest")
	// ErrNotDumped: Verify or ReadManifest was asked about a day that has no
	// manifest.
	ErrNotDumped = errors.New("day not dumped")
)

// IncompleteError says why a day is not complete yet.
type IncompleteError struct {
	// Day is the UTC midnight starting the day.
	Day time.Time
	// HeadPosition and HeadTime describe the last event in the log when the
	// check ran (zero for an empty log).
	HeadPosition uint64
	HeadTime     time.Time
	// Now is the Dumper's clock at the check.
	Now time.Time
	// Tolerance is the clock skew allowance the head must pass the day's end by.
	Tolerance time.Duration
}

func (e *IncompleteError) Error() string {
	end := e.Day.AddDate(0, 0, 1)
	switch {
	case e.Now.Before(end):
		return fmt.Sprintf("dump %s: %v: the day ends at %s, now is %s",
			FormatDay(e.Day), ErrIncomplete, end.Format(time.RFC3339), e.Now.Format(time.RFC3339))
	case e.HeadPosition == 0:
		return fmt.Sprintf("dump %s: %v: the log is empty", FormatDay(e.Day), ErrIncomplete)
	default:
		return fmt.Sprintf("dump %s: %v: the log's head (position %d) is at %s, it must reach %s (day end + %s)",
			FormatDay(e.Day), ErrIncomplete, e.HeadPosition, e.HeadTime.Format(time.RFC3339Nano),
			end.Add(e.Tolerance).Format(time.RFC3339), e.Tolerance)
	}
}

// Unwrap returns ErrIncomplete.
func (e *IncompleteError) Unwrap() error { return ErrIncomplete }
