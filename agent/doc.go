// Package agent is the runtime of an edge unit: it links the unit to the
// control plane over NATS, runs the control plane's signed commands, and
// spools the unit's events in a local log while the link is down.
// cmd/logbook-agent wraps it in a command line.
//
//	cfg := agent.DefaultConfig()
//	cfg.DataDir, cfg.Unit = "/var/lib/logbook-agent", "ship1"
//	cfg.Servers = []string{"nats://cp.example:4222"}
//	cfg.Token = token // first start only
//	cfg.Allow = []string{"/usr/bin/uptime"}
//	a, err := agent.Open(ctx, cfg)
//	if err != nil { ... }
//	defer a.Close()
//	a.Emit(ctx, "reading", "engine", &logbookv1.AgentReading{Sensor: "rpm", Value: 1800})
//
// # The link
//
// Subjects follow steward: the agent subscribes to <unit>.command.> and
// answers each EdgeCommand on its reply subject with an EdgeCommandAck; it
// sends each unit event as an EdgeEvent request on
// <unit>.event.<method>.<domain> and waits for an EdgeEventAck on its own
// inbox. It connects with user = the NATS user from its enrolment and its
// password, and with the inbox prefix "_INBOX_<unit>", so the server can
// allow it to subscribe to <unit>.command.> and _INBOX_<unit>.> only, and to
// publish to <unit>.event.> (plus replies). Method and domain are put in the
// subject with '.', whitespace and wildcards replaced by '_'; the EdgeEvent
// carries them unchanged.
//
// Enrolment goes through an Enroller. The default, NATSEnroller, connects as
// user "$enrol" (DefaultEnrolUser) with the one-time token as password and sends an
// AgentEnrolRequest as a request on "logbook.enrol"; a failed
// authentication, a "Nats-Service-Error" reply header or an empty reply is a
// rejection (ErrEnrolRejected). Other failures are retried with back-off.
//
// # Commands
//
// Each command is checked (addressed to this unit, signed by the control
// plane's key from the enrolment, deadline set and not passed, a known
// method, and what the method checks, e.g. the allowlist); a command that
// fails is answered with a refusal and recorded as an AgentCommandRefused
// event, and not stored. Otherwise it is stored in the command log and only
// then acked. A command id already in the command log is acked again and
// not run again, also after a restart. Each command runs in its own
// goroutine; its AgentCommandResult goes through the spool, with the
// command's method and domain.
//
// On start the agent settles the commands of its last run that have no
// outcome: one that had started is reported failed with error "agent
// restarted while running" (never run again); one that had not is run, or
// refused if its deadline passed meanwhile.
//
// Methods (the payload formats are documented on ProcessSpec and
// ConfigPayload):
//
//   - shellcommand/<program>: runs program (an exact Config.Allow entry)
//     with the command's args, without a shell, until it exits, its
//     deadline or Config.MaxCommandDuration (then its process group is
//     killed). Combined stdout and stderr are kept up to MaxOutput (64 KiB).
//   - syslogforwarding/<log>: args[0] (or the payload) "start" or "stop"
//     following the file Config.Syslog names; each new line becomes an
//     AgentSyslogLine event.
//   - process/<name>: supervises a program per desired status and restart
//     policy; status changes are ReportProcessStatus events.
//   - config/<name>: writes the given config and feature flags atomically
//     to <data>/config/<name>.json.
//
// # Spool and heartbeats
//
// Every unit event is appended to the Spool first (durably, with a UUIDv7
// id and its seq) and sent in seq order; it counts as sent only once the
// control plane acks it, and the acked seq is kept in a checkpoint file.
// Up to Config.SendWindow events are in flight; after a failure the agent
// backs off (with jitter) and resends from the first unacked event. Memory
// stays bounded however long the backlog: events are read back one at a
// time. Disk stays bounded too: when everything is acknowledged and the
// spool is larger than Config.SpoolCompactBytes, it starts a new
// generation and deletes the old one (crash-safe; see Spool).
//
// # Child processes
//
// Commands and supervised processes run in their own process group; on
// Linux they also get SIGKILL when the agent dies (Pdeathsig). While one
// runs, its pid, process group and start time are kept in
// <data>/running/. An agent that starts after being killed first kills
// the process groups those records name (checking the start time, so a
// reused pid is left alone) and waits for them to go; only then does it
// report the commands that were running as failed ("agent restarted while
// running") and start its supervised processes afresh. Nothing is
// adopted: a process the agent cannot wait for is a process it cannot
// supervise.
//
// Heartbeats (AgentHeartbeat, every Config.HeartbeatInterval) do not go
// through the spool: a heartbeat says "alive now", and hours of them piling
// up offline would be noise. Each is an EdgeEvent with seq 0 sent as a
// request on <unit>.event.heartbeat.agent, dropped if not answered within
// Config.HeartbeatTimeout.
//
// # The data directory
//
//	identity/key.pem          the unit's ed25519 key (PKCS#8 PEM), 0600
//	identity/enrolment.json   NATS user, password and URLs, the control
//	                          plane's public key, 0600; the URLs grow by
//	                          the servers of the other control-plane
//	                          nodes the link learns of
//	spool/gen-<base>/         spool generations: embedded event stores,
//	                          stream outbox-<unit>, one EdgeEvent per
//	                          event; seq = base + position
//	spool.acked               {"acked": seq}: the control plane has every
//	                          event up to seq (written atomically)
//	running/<kind>-<key>.json pid records of running commands and
//	                          supervised processes (pid, process group,
//	                          start time), removed once they were reaped
//	commands/                 embedded event store: stream command-<id> per
//	                          command (the command, its start, its outcome)
//	syslog/<log>.json         follower state: running, file id, offset
//	processes/<name>.json     desired state of a supervised process
//	config/<name>.json        applied configuration (AppliedConfig)
//
// Every small state file is replaced atomically (temporary file, fsync,
// rename, fsync of the directory).
package agent
