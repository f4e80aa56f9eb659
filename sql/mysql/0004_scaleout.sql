-- Scale-out (BUS_URL): partition leases and live members of the detection bus, and at most one
-- active (open or acknowledged) alert per fingerprint across every server instance (a generated
-- column that is NULL once the alert is resolved, under a unique key: NULLs never collide).
-- Mirrors sql/sqlite/0004_scaleout.sql.
CREATE TABLE bus_leases (
  part INT NOT NULL PRIMARY KEY,
  holder VARCHAR(128) NOT NULL DEFAULT '',
  expires_at_ms BIGINT NOT NULL DEFAULT 0,
  epoch BIGINT NOT NULL DEFAULT 0,
  acquired_at_ms BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE bus_members (
  instance_id VARCHAR(128) NOT NULL PRIMARY KEY,
  expires_at_ms BIGINT NOT NULL,
  started_at_ms BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
ALTER TABLE alerts ADD COLUMN active_fp VARCHAR(64) GENERATED ALWAYS AS
  (CASE WHEN status IN ('open', 'acknowledged') THEN fingerprint ELSE NULL END) STORED;
CREATE UNIQUE INDEX alerts_active_fingerprint ON alerts (active_fp);
