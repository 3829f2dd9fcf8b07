package bridge

import "errors"

// Sentinel errors of the bridge. Errors wrap them with context; test them
// with errors.Is.
var (
	// ErrInvalidSubject: a subject is not "<unit>.command|event.<method>.<domain>"
	// with subject-safe tokens (see ParseSubject).
	ErrInvalidSubject = errors.New("invalid subject")
	// ErrInvalidEvent: an EdgeEvent is malformed or does not match its
	// subject (wrong unit, method or domain; id not 16 bytes; unknown or
	// undecodable payload type). The agent gets a rejection ack.
	ErrInvalidEvent = errors.New("invalid edge event")
	// ErrInvalidToken: an enrolment token is unknown, used, expired or for
	// another unit. One error for all cases, so a caller learns nothing.
	ErrInvalidToken = errors.New("invalid enrolment token")
	// ErrInvalidEnrolment: an AgentEnrolRequest is malformed (unit name,
	// public key size).
	ErrInvalidEnrolment = errors.New("invalid enrolment request")
	// ErrNotFound: no credential for the unit.
	ErrNotFound = errors.New("not found")
	// ErrAddrInUse: the embedded NATS server's listen address is taken.
	ErrAddrInUse = errors.New("address already in use")
	// ErrServer: the embedded NATS server failed to start.
	ErrServer = errors.New("nats server failed")
	// ErrClosed: the bridge or server was closed.
	ErrClosed = errors.New("bridge closed")
)
