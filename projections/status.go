package projections

import "time"

// State is what a projection is doing.
type State string

// States of a projection.
const (
	// StateStarting: Start has not launched the projection yet.
	StateStarting State = "starting"
	// StateCatchingUp: the version being run is the one readers are
	// served (or none is yet), and it has not reached the head seen at
	// start.
	StateCatchingUp State = "catching-up"
	// StateRebuilding: a new version is being built from position 1 while
	// an older one keeps serving.
	StateRebuilding State = "rebuilding"
	// StateLive: caught up; following the log.
	StateLive State = "live"
	// StateRetrying: the last batch, subscription or switch failed; the
	// runner retries after a backoff. LastError says why.
	StateRetrying State = "retrying"
	// StateStopped: a poison event stopped the projection for good;
	// LastError names its position.
	StateStopped State = "stopped"
	// StateClosed: the runner was closed.
	StateClosed State = "closed"
)

// Status is a snapshot of one projection, for APIs, logs and metrics.
type Status struct {
	Name    string
	Version int
	// Serving is the version readers are served (0: none yet). It is
	// older than Version while a rebuild after a version bump runs.
	Serving int
	// Generation is the generation of Version being fed, and
	// ServingGeneration the one readers are served (0: none yet); see
	// VersionOfGeneration.
	Generation, ServingGeneration int
	State                         State
	// Ready reports whether reads can be served: the running version has
	// caught up to StartHead, or an older version serves during a rebuild.
	Ready bool
	// Checkpoint is the position of the last event the version committed.
	Checkpoint uint64
	// Head is the last head of the log the runner saw; StartHead the one
	// it saw at start.
	Head, StartHead uint64
	// Lag is Head - Checkpoint (0 when the checkpoint is ahead of a stale Head).
	Lag uint64
	// Progress is Checkpoint / Head in [0, 1] (1 for an empty log).
	Progress float64
	// EventsPerSecond is the handling rate over the last second or so.
	EventsPerSecond float64
	// Events and Errors count handled events and failures since start.
	Events, Errors uint64
	// LastError is the most recent failure (kept after recovery, with its
	// time); Attempt counts consecutive failures (0 once a commit succeeds).
	LastError   error
	LastErrorAt time.Time
	Attempt     int
	// Rebuild is the status of the new generation a Runner.Rebuild is
	// building while this one serves; nil when none is.
	Rebuild *Status
}

func (s *Status) derive() {
	s.Lag = 0
	if s.Head > s.Checkpoint {
		s.Lag = s.Head - s.Checkpoint
	}
	s.Progress = 1
	if s.Head > 0 && s.Checkpoint < s.Head {
		s.Progress = float64(s.Checkpoint) / float64(s.Head)
	}
}
