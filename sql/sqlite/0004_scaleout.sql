-- Scale-out (BUS_URL): partition leases and live members of the detection bus, and at most one
-- active (open or acknowledged) alert per fingerprint across every server instance.
-- Mirrors sql/mysql/0004_scaleout.sql.
CREATE TABLE bus_leases (
  part INTEGER PRIMARY KEY,
  holder TEXT NOT NULL DEFAULT '',
  expires_at_ms INTEGER NOT NULL DEFAULT 0,
  epoch INTEGER NOT NULL DEFAULT 0,
  acquired_at_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE bus_members (
  instance_id TEXT PRIMARY KEY,
  expires_at_ms INTEGER NOT NULL,
  started_at_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX alerts_active_fingerprint ON alerts (fingerprint)
  WHERE status IN ('open', 'acknowledged');
