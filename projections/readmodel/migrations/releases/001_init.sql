-- Releases, channels and the channels' promotion history; times are Unix
-- nanoseconds, 0 for none; position is the last event applied to a row.
CREATE TABLE {{table "releases"}} (
	version            TEXT PRIMARY KEY,
	published_at_ns    BIGINT NOT NULL DEFAULT 0,
	published_by       TEXT NOT NULL DEFAULT '',
	artifacts          BIGINT NOT NULL DEFAULT 0,
	platforms          TEXT NOT NULL DEFAULT '[]',
	yanked             BOOLEAN NOT NULL DEFAULT FALSE,
	yanked_at_ns       BIGINT NOT NULL DEFAULT 0,
	yanked_by          TEXT NOT NULL DEFAULT '',
	yank_reason        TEXT NOT NULL DEFAULT '',
	published_position BIGINT NOT NULL,
	position           BIGINT NOT NULL
);
CREATE INDEX {{table "releases"}}_published ON {{table "releases"}} (published_position);
CREATE TABLE {{table "channels"}} (
	name            TEXT PRIMARY KEY,
	description     TEXT NOT NULL DEFAULT '',
	created_at_ns   BIGINT NOT NULL DEFAULT 0,
	created_by      TEXT NOT NULL DEFAULT '',
	current_release TEXT NOT NULL DEFAULT '',
	flags           TEXT NOT NULL DEFAULT '{}',
	updated_at_ns   BIGINT NOT NULL DEFAULT 0,
	position        BIGINT NOT NULL
);
-- One row per promotion or rollback, keyed by the event's position.
CREATE TABLE {{table "promotions"}} (
	position   BIGINT PRIMARY KEY,
	channel    TEXT NOT NULL,
	kind       TEXT NOT NULL,
	release_version TEXT NOT NULL,
	previous   TEXT NOT NULL,
	reason     TEXT NOT NULL,
	by_principal TEXT NOT NULL,
	at_ns      BIGINT NOT NULL
);
CREATE INDEX {{table "promotions"}}_channel ON {{table "promotions"}} (channel, position);
