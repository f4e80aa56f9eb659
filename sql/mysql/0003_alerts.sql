-- Alerts (findings grouped by fingerprint), matcher mutes, notification channels and deliveries.
-- Mirrors sql/sqlite/0003_alerts.sql.
CREATE TABLE alerts (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  fingerprint VARCHAR(64) NOT NULL,
  api_id BIGINT NOT NULL,
  detector VARCHAR(64) NOT NULL,
  severity VARCHAR(16) NOT NULL,
  severity_rank INT NOT NULL,
  status VARCHAR(16) NOT NULL,
  actor VARCHAR(300) NOT NULL,
  endpoint_template VARCHAR(600) NOT NULL DEFAULT '',
  count BIGINT NOT NULL,
  first_seen DOUBLE NOT NULL,
  last_seen DOUBLE NOT NULL,
  touched_at BIGINT NOT NULL,
  message VARCHAR(1000) NOT NULL DEFAULT '',
  evidence_json MEDIUMTEXT NOT NULL,
  muted_until BIGINT NOT NULL DEFAULT 0,
  acknowledged_by VARCHAR(128) NOT NULL DEFAULT '',
  acknowledged_at BIGINT NOT NULL DEFAULT 0,
  ack_comment VARCHAR(1000) NOT NULL DEFAULT '',
  resolved_at BIGINT NOT NULL DEFAULT 0,
  resolved_by VARCHAR(128) NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  KEY alerts_status (status, fingerprint),
  KEY alerts_last_seen (last_seen, id),
  KEY alerts_api (api_id, last_seen, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE mutes (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  detector VARCHAR(64) NOT NULL DEFAULT '',
  actor VARCHAR(300) NOT NULL DEFAULT '',
  api_id BIGINT NOT NULL DEFAULT 0,
  expires_at BIGINT NOT NULL,
  comment VARCHAR(1000) NOT NULL DEFAULT '',
  created_by BIGINT NOT NULL,
  created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE channels (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(128) NOT NULL,
  kind VARCHAR(16) NOT NULL,
  enabled TINYINT NOT NULL,
  min_severity VARCHAR(16) NOT NULL,
  api_ids_json TEXT NOT NULL,
  config_enc MEDIUMTEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE KEY channels_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE deliveries (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  alert_id BIGINT NOT NULL,
  channel_id BIGINT NOT NULL,
  channel_name VARCHAR(128) NOT NULL,
  kind VARCHAR(16) NOT NULL,
  status VARCHAR(16) NOT NULL,
  attempts INT NOT NULL DEFAULT 0,
  last_error VARCHAR(1000) NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  KEY deliveries_alert (alert_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
