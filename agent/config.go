package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"
)

// MaxOutput is how much combined output (stdout and stderr) of a command the
// agent keeps: the first 64 KiB. The rest is read and discarded, and the
// result says output_truncated.
const MaxOutput = 64 << 10

// Config is the agent's configuration. Start from DefaultConfig.
type Config struct {
	// DataDir holds the agent's identity, spool, command log and state
	// (see the package doc for the layout). Required.
	DataDir string
	// Unit is the unit's name: subject-safe (no dots, spaces or
	// wildcards). Required.
	Unit string
	// Servers are NATS URLs. Used for enrolment, and for the link unless
	// the enrolment response named URLs of its own.
	Servers []string
	// Token is the one-time enrolment token; needed only on first start.
	Token string

	// Allow lists the programs shellcommand and process may run, as exact
	// names or paths (compared as strings with the command's domain or
	// program; no globbing, no path resolution before the check).
	Allow []string
	// Syslog maps log names (the domain of syslogforwarding) to file paths.
	Syslog map[string]string

	// HeartbeatInterval between heartbeats (0 disables them).
	HeartbeatInterval time.Duration
	// HeartbeatTimeout bounds each heartbeat request.
	HeartbeatTimeout time.Duration
	// MaxCommandDuration caps how long a shellcommand may run; a command
	// is also stopped at its deadline, whichever comes first.
	MaxCommandDuration time.Duration

	// AckTimeout is how long the spool waits for the control plane to
	// acknowledge an event before it resends from the first unacknowledged
	// one.
	AckTimeout time.Duration
	// SendWindow is how many spooled events may be in flight at once.
	SendWindow int
	// RetryMin and RetryMax bound the back-off (doubling, with jitter)
	// between attempts to deliver the spool while the link is down.
	RetryMin, RetryMax time.Duration
	// ReconnectWait between attempts to reconnect to NATS.
	ReconnectWait time.Duration
	// SpoolCompactBytes: once every spooled event is acknowledged and the
	// spool's newest generation is larger than this, the spool starts a
	// new generation and deletes the old (see Spool).
	SpoolCompactBytes int64

	// SyslogPoll is how often followed files are checked for new lines,
	// rotation and truncation.
	SyslogPoll time.Duration
	// ProcessBackoffMin and ProcessBackoffMax bound the back-off (doubling)
	// before a supervised process is restarted; it starts again from
	// ProcessBackoffMin after the process ran for ProcessBackoffReset.
	ProcessBackoffMin, ProcessBackoffMax, ProcessBackoffReset time.Duration
	// StopGrace is how long a process or command gets after SIGTERM
	// before it is killed.
	StopGrace time.Duration

	// Version is reported in heartbeats.
	Version string
	// Logger receives the agent's logs (default slog.Default()).
	Logger *slog.Logger
	// Enroller performs enrolment (default: NATSEnroller over Servers).
	Enroller Enroller
}

// DefaultConfig returns a Config with every tunable set; callers fill in
// DataDir, Unit, Servers, Token, Allow and Syslog.
func DefaultConfig() Config {
	return Config{
		HeartbeatInterval:   30 * time.Second,
		HeartbeatTimeout:    2 * time.Second,
		MaxCommandDuration:  10 * time.Minute,
		AckTimeout:          10 * time.Second,
		SendWindow:          64,
		RetryMin:            200 * time.Millisecond,
		RetryMax:            30 * time.Second,
		ReconnectWait:       2 * time.Second,
		SpoolCompactBytes:   DefaultSpoolCompactBytes,
		SyslogPoll:          500 * time.Millisecond,
		ProcessBackoffMin:   time.Second,
		ProcessBackoffMax:   time.Minute,
		ProcessBackoffReset: time.Minute,
		StopGrace:           5 * time.Second,
		Version:             "dev",
	}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DataDir == "" {
		bad("data dir: required")
	}
	if err := validateUnit(c.Unit); err != nil {
		bad("unit: %v", err)
	}
	if len(c.Servers) == 0 && c.Enroller == nil {
		bad("servers: at least one NATS URL required")
	}
	for _, a := range c.Allow {
		if a == "" || strings.ContainsAny(a, " \t\n") {
			bad("allow: %q is not a program name or path", a)
		}
	}
	for name, path := range c.Syslog {
		if !safeName(name) {
			bad("syslog: name %q: want letters, digits, '-' and '_'", name)
		}
		if path == "" || !filepath.IsAbs(path) {
			bad("syslog %s: path %q must be absolute", name, path)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		zero bool // may be zero
	}{
		{"heartbeat interval", c.HeartbeatInterval, true},
		{"heartbeat timeout", c.HeartbeatTimeout, false},
		{"max command duration", c.MaxCommandDuration, false},
		{"ack timeout", c.AckTimeout, false},
		{"retry min", c.RetryMin, false},
		{"retry max", c.RetryMax, false},
		{"reconnect wait", c.ReconnectWait, false},
		{"syslog poll", c.SyslogPoll, false},
		{"process backoff min", c.ProcessBackoffMin, false},
		{"process backoff max", c.ProcessBackoffMax, false},
		{"process backoff reset", c.ProcessBackoffReset, false},
		{"stop grace", c.StopGrace, false},
	} {
		if d.v < 0 || d.v == 0 && !d.zero {
			bad("%s: %v must be positive", d.name, d.v)
		}
	}
	if c.RetryMax < c.RetryMin {
		bad("retry max %v below retry min %v", c.RetryMax, c.RetryMin)
	}
	if c.ProcessBackoffMax < c.ProcessBackoffMin {
		bad("process backoff max %v below min %v", c.ProcessBackoffMax, c.ProcessBackoffMin)
	}
	if c.SpoolCompactBytes <= 0 {
		bad("spool compact bytes: %d must be positive", c.SpoolCompactBytes)
	}
	if c.SendWindow < 1 {
		bad("send window: %d must be at least 1", c.SendWindow)
	}
	return errors.Join(errs...)
}

// validateUnit checks a unit name is one NATS subject token.
func validateUnit(u string) error {
	switch {
	case u == "":
		return errors.New("required")
	case len(u) > 128:
		return errors.New("longer than 128 bytes")
	case strings.ContainsAny(u, ". \t\r\n*>"):
		return fmt.Errorf("%q: no dots, whitespace or wildcards allowed", u)
	}
	return nil
}

// safeName reports whether s is usable as a file name and subject token.
func safeName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// subjectToken makes s usable as one token of a NATS subject: dots,
// whitespace and wildcards become '_', and an empty s becomes "_".
func subjectToken(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', ' ', '\t', '\r', '\n', '*', '>':
			return '_'
		}
		return r
	}, s)
}
