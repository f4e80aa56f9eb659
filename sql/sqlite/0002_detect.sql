-- Findings of the detection pipeline. Mirrors sql/mysql/0002_detect.sql.
CREATE TABLE findings (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  api_id INTEGER NOT NULL,
  event_id INTEGER NOT NULL DEFAULT 0,
  ts REAL NOT NULL,
  detector TEXT NOT NULL,
  severity TEXT NOT NULL,
  severity_rank INTEGER NOT NULL,
  score REAL NOT NULL,
  actor TEXT NOT NULL,
  endpoint_template TEXT NOT NULL DEFAULT '',
  method TEXT NOT NULL DEFAULT '',
  client_ip TEXT NOT NULL DEFAULT '',
  identity TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  evidence_json TEXT NOT NULL DEFAULT '{}',
  created_at REAL NOT NULL
);
CREATE INDEX findings_api_id ON findings(api_id, id);
CREATE INDEX findings_detector_id ON findings(detector, id);
CREATE INDEX findings_event ON findings(event_id);
