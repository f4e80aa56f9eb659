-- Boing schema, MySQL/MariaDB (InnoDB, utf8mb4). Mirrors sql/sqlite/0001_init.sql.
-- schema_migrations (version, name, applied_at) is created by the migration runner itself.
-- Indexed strings are VARCHAR sized to fit InnoDB's 3072-byte key limit; every other string is
-- TEXT/MEDIUMTEXT so no configured event limit can make a strict-mode INSERT fail.

CREATE TABLE users (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  username VARCHAR(255) NOT NULL,
  email TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  role VARCHAR(32) NOT NULL,
  disabled TINYINT NOT NULL DEFAULT 0,
  failed_logins INT NOT NULL DEFAULT 0,
  locked_until BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  UNIQUE KEY users_username (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE revoked_tokens (
  jti VARCHAR(255) NOT NULL PRIMARY KEY,
  expires_at BIGINT NOT NULL,
  KEY revoked_tokens_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE apis (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name TEXT NOT NULL,
  base_url TEXT NOT NULL,
  owner_id BIGINT NOT NULL,
  settings_json MEDIUMTEXT NOT NULL,
  ingest_key_hash VARCHAR(255) NOT NULL,
  ingest_key_prefix VARCHAR(64) NOT NULL DEFAULT '',
  upstream_secret_enc TEXT NOT NULL,
  match_host TEXT NOT NULL,
  match_port INT NOT NULL DEFAULT 0,
  match_base_path TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE KEY apis_key (ingest_key_hash),
  KEY apis_owner (owner_id),
  CONSTRAINT apis_owner_fk FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE enrollment_tokens (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  token_hash VARCHAR(255) NOT NULL,
  name TEXT NOT NULL,
  created_by BIGINT NOT NULL DEFAULT 0,
  expires_at BIGINT NOT NULL,
  used_at BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL DEFAULT 0,
  UNIQUE KEY enrollment_tokens_hash (token_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE agents (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  agent_id VARCHAR(255) NOT NULL,
  token_hash VARCHAR(255) NOT NULL,
  hostname TEXT NOT NULL,
  version TEXT NOT NULL,
  enrolled_at BIGINT NOT NULL,
  last_seen BIGINT NOT NULL,
  revoked TINYINT NOT NULL DEFAULT 0,
  counters_json MEDIUMTEXT NOT NULL,
  rates_json MEDIUMTEXT NOT NULL,
  UNIQUE KEY agents_agent_id (agent_id),
  UNIQUE KEY agents_token (token_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- No foreign key to apis: api_id 0 is an event no API matched; DeleteApi removes an API's events
-- itself. agent_id and seq are NULL for application events, so they never collide in
-- events_agent_seq.
CREATE TABLE events (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  api_id BIGINT NOT NULL,
  timestamp DOUBLE NOT NULL,
  method TEXT NOT NULL,
  endpoint MEDIUMTEXT NOT NULL,
  client_ip VARCHAR(255) NOT NULL,
  headers_json MEDIUMTEXT NOT NULL,
  status_code INT NOT NULL,
  latency_ms DOUBLE NOT NULL,
  body_size BIGINT NULL,
  response_size BIGINT NULL,
  query MEDIUMTEXT NOT NULL,
  payload MEDIUMTEXT NOT NULL,
  user_agent MEDIUMTEXT NOT NULL,
  host TEXT NOT NULL,
  identity TEXT NOT NULL,
  server_ip TEXT NOT NULL,
  server_port INT NULL,
  tls TINYINT NULL,
  protocol TEXT NOT NULL,
  agent_id VARCHAR(255) NULL,
  seq BIGINT NULL,
  host_name TEXT NOT NULL,
  pid BIGINT NULL,
  comm TEXT NOT NULL,
  cgroup_id BIGINT NULL,
  container_id TEXT NOT NULL,
  pod TEXT NOT NULL,
  namespace TEXT NOT NULL,
  received_at DOUBLE NOT NULL,
  KEY events_api_ts (api_id, timestamp, id),
  KEY events_ts (timestamp, id),
  KEY events_ip_ts (client_ip, timestamp),
  UNIQUE KEY events_agent_seq (agent_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE detectors (
  id VARCHAR(64) NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  stage VARCHAR(32) NOT NULL,
  enabled TINYINT NOT NULL DEFAULT 1,
  severity VARCHAR(32) NOT NULL DEFAULT 'medium',
  config_json MEDIUMTEXT NOT NULL,
  updated_at BIGINT NOT NULL DEFAULT 0,
  updated_by BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE list_entries (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  list VARCHAR(32) NOT NULL,
  kind VARCHAR(32) NOT NULL,
  value TEXT NOT NULL,
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
  username TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  client_ip TEXT NOT NULL,
  details_json MEDIUMTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE settings (
  `key` VARCHAR(191) NOT NULL PRIMARY KEY,
  value MEDIUMTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
