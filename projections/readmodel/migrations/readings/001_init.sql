-- Readings under their natural key (cloud-lada): a repeated reading is
-- stored once (ON CONFLICT DO NOTHING). time_ns is Unix nanoseconds.
CREATE TABLE {{table "readings"}} (
	unit    TEXT NOT NULL,
	sensor  TEXT NOT NULL,
	time_ns BIGINT NOT NULL,
	value   DOUBLE PRECISION NOT NULL,
	PRIMARY KEY (unit, sensor, time_ns)
);
CREATE INDEX {{table "readings"}}_sensor ON {{table "readings"}} (sensor, time_ns);
-- The newest reading of each (unit, sensor); a reading replaces it only
-- when it is newer.
CREATE TABLE {{table "latest"}} (
	unit    TEXT NOT NULL,
	sensor  TEXT NOT NULL,
	time_ns BIGINT NOT NULL,
	value   DOUBLE PRECISION NOT NULL,
	PRIMARY KEY (unit, sensor)
);
CREATE INDEX {{table "latest"}}_sensor ON {{table "latest"}} (sensor, time_ns);
