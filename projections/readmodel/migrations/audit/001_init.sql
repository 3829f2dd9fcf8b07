-- One row per event of the log except readings, keyed by position.
CREATE TABLE {{table "events"}} (
	position       BIGINT PRIMARY KEY,
	time_ns        BIGINT NOT NULL,
	stream         TEXT NOT NULL,
	version        BIGINT NOT NULL,
	category       TEXT NOT NULL,
	type           TEXT NOT NULL,
	principal      TEXT NOT NULL,
	correlation_id TEXT NOT NULL,
	causation_id   TEXT NOT NULL,
	event_id       TEXT NOT NULL
);
CREATE INDEX {{table "events"}}_stream ON {{table "events"}} (stream, position);
CREATE INDEX {{table "events"}}_principal ON {{table "events"}} (principal, position);
CREATE INDEX {{table "events"}}_category ON {{table "events"}} (category, position);
CREATE INDEX {{table "events"}}_correlation ON {{table "events"}} (correlation_id, position);
CREATE INDEX {{table "events"}}_time ON {{table "events"}} (time_ns);
