-- One row per unit; times are Unix nanoseconds, 0 for none. position is the
-- last event applied to the row (replays at or below it are skipped).
CREATE TABLE {{table "units"}} (
	name                TEXT PRIMARY KEY,
	platform            TEXT NOT NULL DEFAULT '',
	labels              TEXT NOT NULL DEFAULT '{}',
	channel             TEXT NOT NULL DEFAULT '',
	channel_release     TEXT NOT NULL DEFAULT '',
	pinned_release      TEXT NOT NULL DEFAULT '',
	desired_release     TEXT NOT NULL DEFAULT '',
	reported_release    TEXT NOT NULL DEFAULT '',
	connected           BOOLEAN NOT NULL DEFAULT FALSE,
	agent_version       TEXT NOT NULL DEFAULT '',
	last_seen_ns        BIGINT NOT NULL DEFAULT 0,
	registered_at_ns    BIGINT NOT NULL DEFAULT 0,
	registered_by       TEXT NOT NULL DEFAULT '',
	decommissioned      BOOLEAN NOT NULL DEFAULT FALSE,
	decommissioned_at_ns BIGINT NOT NULL DEFAULT 0,
	position            BIGINT NOT NULL
);
CREATE INDEX {{table "units"}}_channel ON {{table "units"}} (channel, name);
-- The labels of each unit again, one row per label, for selectors.
CREATE TABLE {{table "labels"}} (
	unit  TEXT NOT NULL,
	key   TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (unit, key)
);
CREATE INDEX {{table "labels"}}_kv ON {{table "labels"}} (key, value, unit);
