-- Alerts (findings grouped by fingerprint), matcher mutes, notification channels and deliveries.
-- Mirrors sql/mysql/0003_alerts.sql.
CREATE TABLE alerts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  fingerprint TEXT NOT NULL,
  api_id INTEGER NOT NULL,
  detector TEXT NOT NULL,
  severity TEXT NOT NULL,
  severity_rank INTEGER NOT NULL,
  status TEXT NOT NULL,
  actor TEXT NOT NULL,
  endpoint_template TEXT NOT NULL DEFAULT '',
  count INTEGER NOT NULL,
  first_seen REAL NOT NULL,
  last_seen REAL NOT NULL,
  touched_at INTEGER NOT NULL,
  message TEXT NOT NULL DEFAULT '',
  evidence_json TEXT NOT NULL DEFAULT '{}',
  muted_until INTEGER NOT NULL DEFAULT 0,
  acknowledged_by TEXT NOT NULL DEFAULT '',
  acknowledged_at INTEGER NOT NULL DEFAULT 0,
  ack_comment TEXT NOT NULL DEFAULT '',
  resolved_at INTEGER NOT NULL DEFAULT 0,
  resolved_by TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);
CREATE INDEX alerts_status ON alerts(status, fingerprint);
CREATE INDEX alerts_last_seen ON alerts(last_seen, id);
CREATE INDEX alerts_api ON alerts(api_id, last_seen, id);
CREATE TABLE mutes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  detector TEXT NOT NULL DEFAULT '',
  actor TEXT NOT NULL DEFAULT '',
  api_id INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER NOT NULL,
  comment TEXT NOT NULL DEFAULT '',
  created_by INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE channels (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  enabled INTEGER NOT NULL,
  min_severity TEXT NOT NULL,
  api_ids_json TEXT NOT NULL DEFAULT '[]',
  config_enc TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE deliveries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  alert_id INTEGER NOT NULL,
  channel_id INTEGER NOT NULL,
  channel_name TEXT NOT NULL,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX deliveries_alert ON deliveries(alert_id, id);
