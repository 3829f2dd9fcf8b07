-- One row per command of a unit; times are Unix nanoseconds, 0 for none.
-- issued_position orders a unit's commands; position is the last event
-- applied to the row.
CREATE TABLE {{table "commands"}} (
	unit             TEXT NOT NULL,
	command_id       TEXT NOT NULL,
	method           TEXT NOT NULL DEFAULT '',
	domain           TEXT NOT NULL DEFAULT '',
	args             TEXT NOT NULL DEFAULT '[]',
	status           TEXT NOT NULL,
	exit_code        BIGINT NOT NULL DEFAULT 0,
	error            TEXT NOT NULL DEFAULT '',
	output           TEXT NOT NULL DEFAULT '',
	output_size      BIGINT NOT NULL DEFAULT 0,
	output_truncated BOOLEAN NOT NULL DEFAULT FALSE,
	issued_by        TEXT NOT NULL DEFAULT '',
	issued_at_ns     BIGINT NOT NULL DEFAULT 0,
	deadline_ns      BIGINT NOT NULL DEFAULT 0,
	delivered_at_ns  BIGINT NOT NULL DEFAULT 0,
	finished_at_ns   BIGINT NOT NULL DEFAULT 0,
	issued_position  BIGINT NOT NULL,
	position         BIGINT NOT NULL,
	PRIMARY KEY (unit, command_id)
);
CREATE INDEX {{table "commands"}}_unit ON {{table "commands"}} (unit, issued_position);
CREATE INDEX {{table "commands"}}_status ON {{table "commands"}} (status, issued_position);
CREATE INDEX {{table "commands"}}_issued ON {{table "commands"}} (issued_position);
