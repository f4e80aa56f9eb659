-- Boing schema, MySQL/MariaDB (InnoDB, utf8mb4). Mirrors sql/sqlite/0001_init.sql.
CREATE TABLE users (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  username VARCHAR(64) NOT NULL,
  email VARCHAR(254) NOT NULL DEFAULT '',
  password_hash VARCHAR(255) NOT NULL,
  role VARCHAR(16) NOT NULL,
  disabled TINYINT NOT NULL DEFAULT 0,
  failed_logins INT NOT NULL DEFAULT 0,
  locked_until BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  UNIQUE KEY users_username (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE revoked_tokens (
  jti VARCHAR(64) NOT NULL PRIMARY KEY,
  expires_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE apis (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(200) NOT NULL,
  base_url TEXT NOT NULL,
  owner_id BIGINT NOT NULL,
  settings_json MEDIUMTEXT NOT NULL,
  ingest_key_hash CHAR(64) NOT NULL,
  ingest_key_prefix VARCHAR(16) NOT NULL DEFAULT '',
  upstream_secret_enc TEXT NOT NULL,
  match_host VARCHAR(253) NOT NULL DEFAULT '',
  match_port INT NOT NULL DEFAULT 0,
  match_base_path TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE KEY apis_key (ingest_key_hash),
  KEY apis_owner (owner_id),
  CONSTRAINT apis_owner_fk FOREIGN KEY (owner_id) REFERENCES users(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE enrollment_tokens (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  token_hash CHAR(64) NOT NULL,
  name VARCHAR(200) NOT NULL DEFAULT '',
  created_by BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  UNIQUE KEY enrollment_token (token_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE agents (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  agent_id VARCHAR(64) NOT NULL,
  token_hash CHAR(64) NOT NULL,
  hostname VARCHAR(255) NOT NULL DEFAULT '',
  version VARCHAR(64) NOT NULL DEFAULT '',
  enrolled_at BIGINT NOT NULL,
  last_seen BIGINT NOT NULL,
  revoked TINYINT NOT NULL DEFAULT 0,
  counters_json MEDIUMTEXT NOT NULL,
  rates_json MEDIUMTEXT NOT NULL,
  UNIQUE KEY agents_id (agent_id),
  UNIQUE KEY agents_token (token_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE events (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  api_id BIGINT NOT NULL,
  timestamp DOUBLE NOT NULL,
  method VARCHAR(32) NOT NULL,
  endpoint TEXT NOT NULL,
  client_ip VARCHAR(64) NOT NULL,
  headers_json MEDIUMTEXT NOT NULL,
  status_code SMALLINT NOT NULL,
  latency_ms DOUBLE NOT NULL,
  body_size BIGINT NULL,
  response_size BIGINT NULL,
  query TEXT NOT NULL,
  payload TEXT NOT NULL,
  user_agent TEXT NOT NULL,
  host VARCHAR(1024) NOT NULL DEFAULT '',
  identity VARCHAR(128) NOT NULL DEFAULT '',
  server_ip VARCHAR(64) NOT NULL DEFAULT '',
  server_port INT NULL,
  tls TINYINT NULL,
  protocol VARCHAR(32) NOT NULL DEFAULT '',
  agent_id VARCHAR(128) NULL,
  seq BIGINT NULL,
  host_name VARCHAR(255) NOT NULL DEFAULT '',
  pid BIGINT NULL,
  comm VARCHAR(64) NOT NULL DEFAULT '',
  cgroup_id BIGINT NULL,
  container_id VARCHAR(128) NOT NULL DEFAULT '',
  pod VARCHAR(253) NOT NULL DEFAULT '',
  namespace VARCHAR(253) NOT NULL DEFAULT '',
  received_at DOUBLE NOT NULL,
  KEY events_api_ts (api_id, timestamp, id),
  KEY events_ts (timestamp, id),
  KEY events_ip_ts (client_ip, timestamp),
  UNIQUE KEY events_agent_seq (agent_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE detectors (
  id VARCHAR(64) NOT NULL PRIMARY KEY,
  name VARCHAR(200) NOT NULL,
  stage VARCHAR(32) NOT NULL,
  enabled TINYINT NOT NULL,
  severity VARCHAR(16) NOT NULL,
  config_json MEDIUMTEXT NOT NULL,
  updated_at BIGINT NOT NULL DEFAULT 0,
  updated_by BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE list_entries (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  list VARCHAR(16) NOT NULL,
  kind VARCHAR(16) NOT NULL,
  value VARCHAR(255) NOT NULL,
  reason TEXT NOT NULL,
  api_id BIGINT NOT NULL DEFAULT 0,
  created_by BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL DEFAULT 0,
  KEY list_entries_list (list, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE audit_log (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ts_ms BIGINT NOT NULL,
  user_id BIGINT NOT NULL DEFAULT 0,
  username VARCHAR(255) NOT NULL DEFAULT '',
  action VARCHAR(64) NOT NULL,
  target VARCHAR(255) NOT NULL DEFAULT '',
  client_ip VARCHAR(64) NOT NULL DEFAULT '',
  details_json MEDIUMTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE settings (
  `key` VARCHAR(128) NOT NULL PRIMARY KEY,
  value MEDIUMTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
