// Package bridge is the control-plane side of the edge link: NATS subject
// names, per-unit NATS credentials and enrolment, command dispatch and
// event intake.
//
// # Subjects
//
// Steward's names: "<unit>.command.<method>.<domain>" (control plane to
// agent, a NATS request answered by an EdgeCommandAck) and
// "<unit>.event.<method>.<domain>" (agent to control plane, a request
// answered by an EdgeEventAck). Every token is subject-safe
// (unit.ValidateToken); see CommandSubject, EventSubject and ParseSubject.
//
// # What an agent must do
//
//   - Enrol once: connect as user EnrolUser ("$enrol") with the one-time
//     token as password and nats.CustomInboxPrefix(InboxPrefix(unit)),
//     request EnrolSubject ("logbook.enrol") with an AgentEnrolRequest
//     (unit, token, its ed25519 public key). The AgentEnrolResponse holds
//     the NATS user (the unit name), password and URLs and the control
//     plane's command-signing key, or error when refused. The token is
//     used up even if the reply is lost: ask for a new one then.
//   - Then connect as the unit with nats.CustomInboxPrefix(InboxPrefix(unit))
//     ("_INBOX_<unit>"). The unit may publish only "<unit>.event.>",
//     subscribe only "<unit>.command.>" and "_INBOX_<unit>.>", and reply
//     once to each command request it received (within
//     ServerConfig.ResponseTTL). An event whose reply subject is not below
//     "_INBOX_<unit>." is dropped unrecorded.
//   - Send an AgentHeartbeat as soon as it is connected, then
//     periodically (well within IntakeConfig.HeartbeatTimeout, default
//     90s): the first event of a session makes the bridge deliver the
//     unit's pending commands at once instead of at its next backoff.
//   - Answer each EdgeCommand with an EdgeCommandAck after storing it (or
//     refusing it: refusal set). Verify the signature with the enrolment
//     key (EdgeCommand.VerifySignature) and refuse anything unsigned,
//     forged, for another unit or past its deadline. The bridge
//     redelivers until it gets an ack; the agent deduplicates by command
//     id and acks duplicates again.
//   - Publish each spooled event as an EdgeEvent request with its 16-byte
//     id, unit, method and domain equal to the subject's, one of the
//     payload types below, and drop it from the spool on an ack: stored
//     (durable in the log), or error set (rejected for good). No reply
//     means retry. Send a unit's events in spool order; the bridge records
//     one unit's events one at a time in the order they arrive.
//
// # Where unit events go
//
//   - logbook.v1.AgentHeartbeat: RecordUnitHeartbeat on unit-<unit> (and
//     ReportUnitRelease when release is set).
//   - logbook.v1.AgentCommandResult: RecordUnitCommandResult, so the result
//     becomes UnitCommandSucceeded or UnitCommandFailed; output beyond
//     unit.MaxOutputBytes (64 KiB) is cut by the aggregate, which marks the
//     event output_truncated. A result for a finished command (a
//     redelivery, or after expiry) is acked as stored and changes nothing.
//   - logbook.v1.AgentCommandRefused: a failed result, exit code -1, error
//     "refused by agent: <reason>".
//   - logbook.v1.AgentReading: appended as is to "readings-<unit>",
//     logbook.v1.AgentSyslogLine to "syslog-<unit>", with the EdgeEvent id
//     as event id, so a redelivered event is stored once.
//   - logbook.v1.ReportProcessStatus on <unit>.event.<method>.<domain>: to
//     the process entity "process-<unit>.<method>.<domain>" (the host must
//     have process.Kind registered; otherwise, or when the aggregate
//     refuses the report, it is rejected).
//   - anything else, or an event of an unregistered or decommissioned
//     unit: rejected.
//
// Any event counts as a sign of life: the first one after a silence
// records RecordUnitConnected with a new session id, and
// IntakeConfig.HeartbeatTimeout without one records RecordUnitDisconnected.
// A unit that connects gets its pending commands at once.
//
// # Commands
//
// Commands are events first: the API executes IssueUnitCommand on the
// unit's entity. The dispatcher follows the log's unit command lifecycle
// events, delivers each unit's pending commands in issue order, one at a
// time per unit, signed with the control plane's key (SignCommand), and
// redelivers with exponential backoff and jitter until the agent acks
// (MarkUnitCommandDelivered), refuses (a failed result) or the deadline
// passes (ExpireUnitCommand, also for delivered commands without a result).
//
// # NATS
//
// StartServer runs the embedded NATS server (DefaultPort 4250) whose
// authenticator checks every connection against a CredentialStore, so
// enrolments and revocations need no restart. An external NATS server is
// just a nats.Conn given to Start; it must enforce the same permissions
// itself.
//
// # Credentials
//
// A control plane keeps credentials in the log: NewLogCredentials(ctx,
// store) folds the "credential-<unit>" and "enroltoken-<sha256>" streams
// (credential.proto) and follows them, so units stay enrolled across
// restarts, an unused token survives one, every node sharing the log
// accepts the same units, and a token is used once however enrolments
// race. Only hashes are stored (passwords salted). A unit's
// UnitDecommissioned event revokes its credential; the server then kicks
// its connections. MemoryCredentials is for tests.
//
// Example:
//
//	creds, err := bridge.NewLogCredentials(ctx, store)
//	defer creds.Close()
//	srv, err := bridge.StartServer(ctx, creds, bridge.DefaultServerConfig())
//	...
//	nc, err := srv.ConnectInternal()
//	enroller, err := bridge.NewEnroller(creds, key.Public().(ed25519.PublicKey), srv.AdvertiseURLs())
//	cfg := bridge.DefaultConfig()
//	cfg.Enroller = enroller
//	b, err := bridge.Start(ctx, nc, host, store, key, cfg)
//	defer b.Close()
package bridge
