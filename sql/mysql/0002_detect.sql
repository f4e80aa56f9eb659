-- Findings of the detection pipeline. Mirrors sql/sqlite/0002_detect.sql.
CREATE TABLE findings (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  api_id BIGINT NOT NULL,
  event_id BIGINT NOT NULL DEFAULT 0,
  ts DOUBLE NOT NULL,
  detector VARCHAR(64) NOT NULL,
  severity VARCHAR(16) NOT NULL,
  severity_rank INT NOT NULL,
  score DOUBLE NOT NULL,
  actor VARCHAR(300) NOT NULL,
  endpoint_template VARCHAR(600) NOT NULL DEFAULT '',
  method VARCHAR(32) NOT NULL DEFAULT '',
  client_ip VARCHAR(64) NOT NULL DEFAULT '',
  identity VARCHAR(128) NOT NULL DEFAULT '',
  message VARCHAR(1000) NOT NULL DEFAULT '',
  evidence_json MEDIUMTEXT NOT NULL,
  created_at DOUBLE NOT NULL,
  KEY findings_api_id (api_id, id),
  KEY findings_detector_id (detector, id),
  KEY findings_event (event_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
