-- One row per process stream "process-<unit>.<method>.<domain>"; times
-- are Unix nanoseconds, 0 for none; position is the last event applied.
CREATE TABLE {{table "processes"}} (
	unit                TEXT NOT NULL,
	method              TEXT NOT NULL,
	domain              TEXT NOT NULL,
	desired_status      TEXT NOT NULL DEFAULT '',
	restart_policy      TEXT NOT NULL DEFAULT '',
	config              TEXT NOT NULL DEFAULT '{}',
	config_revision     BIGINT NOT NULL DEFAULT 0,
	desired_changed_ns  BIGINT NOT NULL DEFAULT 0,
	desired_changed_by  TEXT NOT NULL DEFAULT '',
	reported_status     TEXT NOT NULL DEFAULT '',
	restart_count       BIGINT NOT NULL DEFAULT 0,
	exit_code           BIGINT NOT NULL DEFAULT 0,
	detail              TEXT NOT NULL DEFAULT '',
	reported_at_ns      BIGINT NOT NULL DEFAULT 0,
	position            BIGINT NOT NULL,
	PRIMARY KEY (unit, method, domain)
);
