-- Boing schema, SQLite. Mirrors sql/mysql/0001_init.sql.
-- schema_migrations (version, name, applied_at) is created by the migration runner itself.

CREATE TABLE users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT NOT NULL UNIQUE,
  email TEXT NOT NULL DEFAULT '',
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0,
  failed_logins INTEGER NOT NULL DEFAULT 0,
  locked_until INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);

CREATE TABLE revoked_tokens (
  jti TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
);
CREATE INDEX revoked_tokens_expires ON revoked_tokens(expires_at);

CREATE TABLE apis (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  base_url TEXT NOT NULL DEFAULT '',
  owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  settings_json TEXT NOT NULL DEFAULT '{}',
  ingest_key_hash TEXT NOT NULL UNIQUE,
  ingest_key_prefix TEXT NOT NULL DEFAULT '',
  upstream_secret_enc TEXT NOT NULL DEFAULT '',
  match_host TEXT NOT NULL DEFAULT '',
  match_port INTEGER NOT NULL DEFAULT 0,
  match_base_path TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX apis_owner ON apis(owner_id);

CREATE TABLE enrollment_tokens (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  token_hash TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL DEFAULT '',
  created_by INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER NOT NULL,
  used_at INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE agents (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  agent_id TEXT NOT NULL UNIQUE,
  token_hash TEXT NOT NULL UNIQUE,
  hostname TEXT NOT NULL DEFAULT '',
  version TEXT NOT NULL DEFAULT '',
  enrolled_at INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0,
  counters_json TEXT NOT NULL DEFAULT '{}',
  rates_json TEXT NOT NULL DEFAULT '[]'
);

-- No AUTOINCREMENT (it costs a write per inserted row): InsertEvents assigns ids and keeps the
-- high-water mark in `sequences`, so ids are never reused. No foreign key to apis either: api_id
-- 0 is an event no API matched; DeleteApi removes an API's events itself.
-- agent_id and seq are NULL for application events: they never collide in events_agent_seq, and
-- the partial index spares them an index insert.
CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  api_id INTEGER NOT NULL,
  timestamp REAL NOT NULL,
  method TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  client_ip TEXT NOT NULL,
  headers_json TEXT NOT NULL DEFAULT '[]',
  status_code INTEGER NOT NULL,
  latency_ms REAL NOT NULL,
  body_size INTEGER,
  response_size INTEGER,
  query TEXT NOT NULL DEFAULT '',
  payload TEXT NOT NULL DEFAULT '',
  user_agent TEXT NOT NULL DEFAULT '',
  host TEXT NOT NULL DEFAULT '',
  identity TEXT NOT NULL DEFAULT '',
  server_ip TEXT NOT NULL DEFAULT '',
  server_port INTEGER,
  tls INTEGER,
  protocol TEXT NOT NULL DEFAULT '',
  agent_id TEXT,
  seq INTEGER,
  host_name TEXT NOT NULL DEFAULT '',
  pid INTEGER,
  comm TEXT NOT NULL DEFAULT '',
  cgroup_id INTEGER,
  container_id TEXT NOT NULL DEFAULT '',
  pod TEXT NOT NULL DEFAULT '',
  namespace TEXT NOT NULL DEFAULT '',
  received_at REAL NOT NULL
);
CREATE INDEX events_api_ts ON events(api_id, timestamp, id);
CREATE INDEX events_ts ON events(timestamp, id);
CREATE INDEX events_ip_ts ON events(client_ip, timestamp);
CREATE UNIQUE INDEX events_agent_seq ON events(agent_id, seq) WHERE agent_id IS NOT NULL;

CREATE TABLE sequences (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);

CREATE TABLE detectors (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  stage TEXT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 1,
  severity TEXT NOT NULL DEFAULT 'medium',
  config_json TEXT NOT NULL DEFAULT '{}',
  updated_at INTEGER NOT NULL DEFAULT 0,
  updated_by INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE list_entries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  list TEXT NOT NULL,
  kind TEXT NOT NULL,
  value TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  api_id INTEGER NOT NULL DEFAULT 0,
  created_by INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX list_entries_list ON list_entries(list, id);

CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ts_ms INTEGER NOT NULL,
  user_id INTEGER NOT NULL DEFAULT 0,
  username TEXT NOT NULL DEFAULT '',
  action TEXT NOT NULL,
  target TEXT NOT NULL DEFAULT '',
  client_ip TEXT NOT NULL DEFAULT '',
  details_json TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE settings (
  `key` TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
