package unit

import "errors"

// Errors Decide returns, wrapped with the unit's name and details
// ("unit ship1: ..."). Test them with errors.Is.
var (
	// ErrInvalidName: the unit name is not subject-safe; see ValidateName.
	ErrInvalidName = errors.New("invalid unit name")
	// ErrNotRegistered: the command needs a registered unit and there is none.
	ErrNotRegistered = errors.New("unit not registered")
	// ErrAlreadyRegistered: RegisterUnit for a unit that is registered.
	ErrAlreadyRegistered = errors.New("unit already registered")
	// ErrDecommissioned: the unit is decommissioned; every command is refused.
	ErrDecommissioned = errors.New("unit decommissioned")
	// ErrInvalidLabel: a label key or value breaks ValidateLabel, or a unit
	// would have more than MaxLabels labels.
	ErrInvalidLabel = errors.New("invalid label")
	// ErrInvalidChannel: the channel name is empty or not a valid entity id,
	// or the channel facts are missing, are about another channel, or say it
	// does not exist.
	ErrInvalidChannel = errors.New("invalid channel")
	// ErrChannelMismatch: ObserveUnitChannelRelease for a channel the unit
	// does not follow (a stale fan-out; callers may ignore it).
	ErrChannelMismatch = errors.New("unit is not on that channel")
	// ErrInvalidRelease: the release version is empty or not a valid entity
	// id, or the release facts are missing, are about another release, or
	// say it is unpublished or yanked.
	ErrInvalidRelease = errors.New("invalid release")
	// ErrInvalidReport: a report from the agent or the bridge is malformed
	// (release, processes, session id), or RegisterUnit's platform is.
	ErrInvalidReport = errors.New("invalid report")
	// ErrInvalidCommand: an IssueUnitCommand is malformed (id, method,
	// domain, missing deadline, too large input or signature), or a command
	// id given to deliver, complete or expire a command is empty.
	ErrInvalidCommand = errors.New("invalid remote command")
	// ErrDuplicateCommand: the command id is already pending or among the
	// retained finished commands.
	ErrDuplicateCommand = errors.New("duplicate command id")
	// ErrDeadlinePassed: IssueUnitCommand with a deadline not after now.
	ErrDeadlinePassed = errors.New("command deadline already passed")
	// ErrTooManyPending: MaxPendingCommands commands are pending already.
	ErrTooManyPending = errors.New("too many pending commands")
	// ErrUnknownCommand: no pending or retained finished command has the id.
	ErrUnknownCommand = errors.New("unknown command id")
	// ErrCommandFinished: a result or expiry for a command that already
	// succeeded, failed, expired or was cancelled.
	ErrCommandFinished = errors.New("command already finished")
	// ErrNotDue: ExpireUnitCommand before the command's deadline.
	ErrNotDue = errors.New("command deadline not reached")
	// ErrReasonRequired: DecommissionUnit without a reason.
	ErrReasonRequired = errors.New("reason required")
	// ErrUnsupported: Decide was given a message that is not a unit command.
	ErrUnsupported = errors.New("not a unit command")
)
