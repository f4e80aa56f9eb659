// boing-server's configuration: every variable of .env.example, validated at start-up.
//
// Sources, later winning: defaults < `--config FILE` < environment < flags. In local mode (the
// default) missing JWT_SECRET / ENCRYPTION_KEY are generated once and kept in DATA_DIR/secrets.env
// (mode 0600); in production mode (BOING_ENV=production) a missing or weak secret stops start-up
// with a message naming the variable and how to create a good value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "boing/config.h"
#include "boing/event.h"

namespace boing {

struct ServerConfig {
  // Process.
  std::string listen_host = "0.0.0.0";
  uint16_t listen_port = 8000;
  int threads = 2;
  std::string data_dir = ".data";
  bool production = false;
  std::string public_url;  // for links in alerts; default http://localhost:PORT

  // HTTP.
  size_t max_body_bytes = 8 << 20;
  size_t max_header_bytes = 16 << 10;
  int read_timeout_s = 30;
  int idle_timeout_s = 60;
  int drain_timeout_s = 15;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::vector<std::string> trusted_proxies;
  std::vector<std::string> cors_origins;

  // Logging.
  std::string log_level = "info";
  std::string log_file;
  int64_t log_max_bytes = 10 << 20;
  int log_max_files = 5;
  bool access_log = false;

  // Database.
  std::string db_host;  // empty = SQLite in data_dir
  int db_port = 3306;
  std::string db_user = "boing";
  std::string db_password;
  std::string db_name = "boing";
  int db_pool_size = 8;
  // A MySQL/MariaDB replica for log and metrics queries (/api/logs, /api/export/logs,
  // /api/metrics); empty = the primary. Port defaults to db_port, user/password to db_user's.
  std::string db_read_host;
  int db_read_port = 3306;
  std::string db_read_user;
  std::string db_read_password;
  std::string sqlite_path;  // default DATA_DIR/boing.db
  bool db_fsync = false;    // DB_FSYNC: power-loss durability (synchronous=FULL)

  // Scale-out (docs/scaleout.md). Empty bus_url = the in-process bus of one server.
  std::string bus_url;  // BUS_URL: nats://host:port[,nats://...]
  std::string bus_stream = "BOING_EVENTS";
  int bus_partitions = 16;             // events of an API go to partition hash(api_id) % this
  int bus_lease_seconds = 10;          // a partition's lease; renewed every third of it
  std::string bus_instance_id;         // default: hostname:pid:random
  int bus_publish_queue_max = 100000;  // committed events waiting for their publish
  int bus_fetch_batch = 256;           // messages per pull request of a partition consumer
  int bus_publish_timeout_ms = 2000;   // longest an ingest answer waits for JetStream's ack

  // Security.
  std::string jwt_secret;
  int jwt_ttl_s = 3600;
  std::string jwt_issuer = "boing";
  std::string jwt_audience = "boing-dashboard";
  std::string encryption_key;
  std::vector<std::string> encryption_keys_old;
  std::string admin_username;  // ADMIN_USERNAME/ADMIN_PASSWORD: create this admin at start
  std::string admin_password;
  bool allow_registration = true;
  int password_min_len = 8;
  int login_max_failures = 5;  // then the account is locked
  int login_lockout_s = 900;
  int auth_rate_per_min = 20;                               // login/register per client IP
  int api_rate_per_min = 600;                               // management endpoints per user and IP
  int api_json_max_depth = 32;                              // nesting of management request bodies
  std::vector<std::string> secret_headers = {"X-Api-Key"};  // treated like Authorization
  std::string metrics_token;                                // optional bearer token for /metrics

  // Ingest.
  EventLimits event_limits;
  size_t batch_max_events = 10000;
  size_t ingest_queue_max = 200000;  // events waiting for commit; 503 beyond
  size_t commit_max_events = 20000;  // events per group commit
  int enrollment_ttl_s = 86400;

  // Detection (stored as detector defaults at first start; the detection issue uses them).
  int rate_limit_threshold = 100;
  double anomaly_zscore_threshold = 3.0;
  double ml_contamination = 0.1;
  int ml_retrain_interval_s = 3600;
  int detection_batch_size = 500;
  // The payload classifier's model; empty = payload_classifier.model next to the executable.
  std::string payload_model_file;
  // GEOIP_DB: the .mmdb files of the geographic detectors, comma-separated; empty = the DB-IP City
  // Lite files scripts/setup.sh installs (third_party/geoip); "off" = no geographic detection.
  std::string geoip_db;
  size_t detection_queue_max = 20000;  // committed events waiting for detection; dropped beyond

  // Alerts (the alerts issue uses them).
  std::string smtp_host;
  int smtp_port = 587;
  std::string smtp_user;
  std::string smtp_password;
  std::string alert_email_from = "alerts@boing.local";
  std::vector<std::string> alert_email_to;
  std::string slack_webhook_url;
  std::string webhook_url;
  std::string webhook_secret;
  std::string smtp_tls =
      "auto";  // SMTP_TLS: auto (465 = smtps, else starttls) | starttls | smtps | none
  std::string smtp_ca_file;          // SMTP_CA_FILE: CA bundle for the SMTP server's certificate
  int alert_group_window_s = 300;    // findings of one fingerprint within this join its alert
  int alert_resolve_after_s = 3600;  // an alert quiet this long is resolved automatically
  int alert_delivery_max_attempts = 5;
  int alert_delivery_backoff_ms = 2000;  // first retry delay; doubles, with jitter
  int alert_delivery_timeout_s = 10;     // one attempt (connect + transfer)
  int alert_delivery_workers = 4;        // a failing channel occupies at most one
  size_t alert_delivery_queue_max = 10000;
  int alert_delivery_resume_hours = 24;     // pending deliveries younger than this resume at start
  bool alert_allow_private_targets = true;  // webhook/Slack URLs on loopback/private addresses
  size_t ws_send_queue_max = 1000;          // messages queued per WebSocket client; closed beyond
  // Automatic response: blacklist an alert's IP actor for this long (0 = off), doubling for repeat
  // offenders up to the max; only alerts of at least this severity.
  int alert_autoblock_seconds = 0;
  int alert_autoblock_max_seconds = 86400;
  std::string alert_autoblock_min_severity = "high";

  // LLM (optional).
  bool llm_enabled = false;
  std::string llm_endpoint = "http://localhost:8080/completion";
  std::string llm_model = "tinyllama";
  int llm_timeout_ms = 5000;
  int llm_max_concurrency = 2;  // requests in flight at once
  int llm_queue_max = 1000;     // reviews waiting for a free request slot
  int llm_cache_size = 10000;   // verdicts remembered by payload hash (LRU); 0 = no cache

  // Dashboard static files.
  std::string dashboard_dir;
};

// Every variable name ServerConfig reads (for the environment layer and .env.example checks).
const std::vector<std::string>& ServerConfigVariables();

// Fills `cfg` from `s`. Returns the list of problems (empty = fine); each names its variable.
std::vector<std::string> LoadServerConfig(const Settings& s, ServerConfig& cfg);

// Local mode: creates or reads DATA_DIR/secrets.env for any secret left empty. Production mode:
// verifies the secrets. Returns problems, each naming the variable and what to set.
std::vector<std::string> ResolveSecrets(ServerConfig& cfg);

}  // namespace boing
