package process

import "errors"

// Errors Decide and the id helpers return, wrapped with details; Decide's
// start "process <id>: ". Test them with errors.Is.
var (
	// ErrInvalidID: the process id or stream name is not
	// "[process-]<unit>.<method>.<domain>" with three valid tokens.
	ErrInvalidID = errors.New("invalid process id")
	// ErrInvalidStatus: a desired status that is not RUNNING or STOPPED, or
	// a reported status that is UNSPECIFIED or unknown.
	ErrInvalidStatus = errors.New("invalid process status")
	// ErrInvalidRestartPolicy: a restart policy that is UNSPECIFIED or unknown.
	ErrInvalidRestartPolicy = errors.New("invalid restart policy")
	// ErrInvalidConfig: a config key is invalid, a value is not UTF-8, or
	// the config exceeds MaxConfigKeys or MaxConfigBytes.
	ErrInvalidConfig = errors.New("invalid process config")
	// ErrUnsupported: Decide was given a message that is not a process command.
	ErrUnsupported = errors.New("not a process command")
)
