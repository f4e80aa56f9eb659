#include "boing/server_config.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "boing/crypto.h"

namespace boing {
namespace {

const char* kWeakSecrets[] = {"your-secret-key-change-this", "your-encryption-key-32-chars",
                              "changeme", "secret", "change-me"};

bool IsWeak(const std::string& s) {
  for (const char* w : kWeakSecrets) {
    if (s == w) return true;
  }
  return false;
}

}  // namespace

const std::vector<std::string>& ServerConfigVariables() {
  static const std::vector<std::string> kVars = {"BOING_ENV",
                                                 "LISTEN",
                                                 "THREADS",
                                                 "DATA_DIR",
                                                 "PUBLIC_URL",
                                                 "MAX_BODY_BYTES",
                                                 "MAX_HEADER_BYTES",
                                                 "READ_TIMEOUT_SECONDS",
                                                 "IDLE_TIMEOUT_SECONDS",
                                                 "DRAIN_TIMEOUT_SECONDS",
                                                 "TLS_CERT_FILE",
                                                 "TLS_KEY_FILE",
                                                 "TRUSTED_PROXIES",
                                                 "CORS_ORIGINS",
                                                 "LOG_LEVEL",
                                                 "LOG_FILE",
                                                 "LOG_MAX_BYTES",
                                                 "LOG_MAX_FILES",
                                                 "ACCESS_LOG",
                                                 "DB_HOST",
                                                 "DB_PORT",
                                                 "DB_USER",
                                                 "DB_PASSWORD",
                                                 "DB_NAME",
                                                 "DB_POOL_SIZE",
                                                 "DB_READ_HOST",
                                                 "DB_READ_PORT",
                                                 "DB_READ_USER",
                                                 "DB_READ_PASSWORD",
                                                 "SQLITE_PATH",
                                                 "DB_FSYNC",
                                                 "BUS_URL",
                                                 "BUS_STREAM",
                                                 "BUS_PARTITIONS",
                                                 "BUS_LEASE_SECONDS",
                                                 "BUS_INSTANCE_ID",
                                                 "BUS_PUBLISH_QUEUE_MAX",
                                                 "BUS_FETCH_BATCH",
                                                 "BUS_PUBLISH_TIMEOUT_MS",
                                                 "JWT_SECRET",
                                                 "JWT_TTL_SECONDS",
                                                 "JWT_ISSUER",
                                                 "JWT_AUDIENCE",
                                                 "ENCRYPTION_KEY",
                                                 "ENCRYPTION_KEYS_OLD",
                                                 "ADMIN_USERNAME",
                                                 "ADMIN_PASSWORD",
                                                 "ALLOW_REGISTRATION",
                                                 "PASSWORD_MIN_LENGTH",
                                                 "LOGIN_MAX_FAILURES",
                                                 "LOGIN_LOCKOUT_SECONDS",
                                                 "AUTH_RATE_LIMIT_PER_MINUTE",
                                                 "API_RATE_LIMIT_PER_MINUTE",
                                                 "API_JSON_MAX_DEPTH",
                                                 "SECRET_HEADERS",
                                                 "METRICS_TOKEN",
                                                 "EVENT_MAX_BYTES",
                                                 "EVENT_MAX_DEPTH",
                                                 "EVENT_MAX_FIELD_LENGTH",
                                                 "EVENT_MAX_ENDPOINT_LENGTH",
                                                 "EVENT_MAX_HEADERS",
                                                 "EVENT_MAX_HEADER_VALUE_LENGTH",
                                                 "EVENT_MAX_PAYLOAD_LENGTH",
                                                 "BATCH_MAX_EVENTS",
                                                 "INGEST_QUEUE_MAX",
                                                 "COMMIT_MAX_EVENTS",
                                                 "ENROLLMENT_TTL_SECONDS",
                                                 "RATE_LIMIT_THRESHOLD",
                                                 "ANOMALY_ZSCORE_THRESHOLD",
                                                 "ML_CONTAMINATION",
                                                 "ML_RETRAIN_INTERVAL_SECONDS",
                                                 "DETECTION_BATCH_SIZE",
                                                 "DETECTION_QUEUE_MAX",
                                                 "PAYLOAD_MODEL_FILE",
                                                 "GEOIP_DB",
                                                 "SMTP_HOST",
                                                 "SMTP_PORT",
                                                 "SMTP_USER",
                                                 "SMTP_PASSWORD",
                                                 "ALERT_EMAIL_FROM",
                                                 "ALERT_EMAIL_TO",
                                                 "SLACK_WEBHOOK_URL",
                                                 "WEBHOOK_URL",
                                                 "WEBHOOK_SECRET",
                                                 "SMTP_TLS",
                                                 "SMTP_CA_FILE",
                                                 "ALERT_GROUP_WINDOW_SECONDS",
                                                 "ALERT_RESOLVE_AFTER_SECONDS",
                                                 "ALERT_DELIVERY_MAX_ATTEMPTS",
                                                 "ALERT_DELIVERY_BACKOFF_MS",
                                                 "ALERT_DELIVERY_TIMEOUT_SECONDS",
                                                 "ALERT_DELIVERY_WORKERS",
                                                 "ALERT_DELIVERY_QUEUE_MAX",
                                                 "ALERT_DELIVERY_RESUME_HOURS",
                                                 "ALERT_ALLOW_PRIVATE_TARGETS",
                                                 "WS_SEND_QUEUE_MAX",
                                                 "ALERT_AUTOBLOCK_SECONDS",
                                                 "ALERT_AUTOBLOCK_MAX_SECONDS",
                                                 "ALERT_AUTOBLOCK_MIN_SEVERITY",
                                                 "LLM_ENABLED",
                                                 "LLM_ENDPOINT",
                                                 "LLM_MODEL",
                                                 "LLM_TIMEOUT_MS",
                                                 "LLM_MAX_CONCURRENCY",
                                                 "LLM_QUEUE_MAX",
                                                 "LLM_CACHE_SIZE",
                                                 "DASHBOARD_DIR"};
  return kVars;
}

std::vector<std::string> LoadServerConfig(const Settings& s, ServerConfig& c) {
  std::vector<std::string> e;
  auto str = [&](const char* k, std::string& out) { out = s.GetString(k, out); };
  auto i64 = [&](const char* k, auto& out, int64_t min, int64_t max) {
    int64_t v = static_cast<int64_t>(out);
    s.GetInt(k, min, max, &v, e);
    out = static_cast<std::remove_reference_t<decltype(out)>>(v);
  };
  std::string env = s.GetString("BOING_ENV", "local");
  if (env != "local" && env != "production") {
    e.push_back("BOING_ENV: must be 'local' or 'production', not '" + env + "'");
  }
  c.production = env == "production";
  if (auto listen = s.Get("LISTEN"); listen && !listen->empty()) {
    size_t colon = listen->rfind(':');
    int64_t port = -1;
    std::vector<std::string> perr;
    if (colon != std::string::npos) {
      Settings p;
      p.Set("LISTEN", listen->substr(colon + 1));
      p.GetInt("LISTEN", 0, 65535, &port, perr);
    }
    if (colon == std::string::npos || port < 0) {
      e.push_back("LISTEN: expected HOST:PORT (port 0 picks a free port), got '" + *listen + "'");
    } else {
      c.listen_host = listen->substr(0, colon);
      if (c.listen_host.size() > 2 && c.listen_host.front() == '[') {
        c.listen_host = c.listen_host.substr(1, c.listen_host.size() - 2);
      }
      if (c.listen_host.empty()) c.listen_host = "0.0.0.0";
      c.listen_port = static_cast<uint16_t>(port);
    }
  }
  i64("THREADS", c.threads, 1, 256);
  str("DATA_DIR", c.data_dir);
  str("PUBLIC_URL", c.public_url);
  i64("MAX_BODY_BYTES", c.max_body_bytes, 1024, int64_t{1} << 31);
  i64("MAX_HEADER_BYTES", c.max_header_bytes, 1024, 1 << 20);
  i64("READ_TIMEOUT_SECONDS", c.read_timeout_s, 1, 3600);
  i64("IDLE_TIMEOUT_SECONDS", c.idle_timeout_s, 1, 3600);
  i64("DRAIN_TIMEOUT_SECONDS", c.drain_timeout_s, 0, 3600);
  str("TLS_CERT_FILE", c.tls_cert_file);
  str("TLS_KEY_FILE", c.tls_key_file);
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    e.push_back("TLS_CERT_FILE and TLS_KEY_FILE: set both for HTTPS, or neither");
  }
  c.trusted_proxies = s.GetList("TRUSTED_PROXIES");
  c.cors_origins = s.GetList("CORS_ORIGINS");
  str("LOG_LEVEL", c.log_level);
  str("LOG_FILE", c.log_file);
  i64("LOG_MAX_BYTES", c.log_max_bytes, 4096, int64_t{1} << 40);
  i64("LOG_MAX_FILES", c.log_max_files, 1, 100);
  s.GetBool("ACCESS_LOG", &c.access_log, e);

  str("DB_HOST", c.db_host);
  i64("DB_PORT", c.db_port, 1, 65535);
  str("DB_USER", c.db_user);
  str("DB_PASSWORD", c.db_password);
  str("DB_NAME", c.db_name);
  i64("DB_POOL_SIZE", c.db_pool_size, 1, 256);
  str("DB_READ_HOST", c.db_read_host);
  c.db_read_port = c.db_port;
  i64("DB_READ_PORT", c.db_read_port, 1, 65535);
  str("DB_READ_USER", c.db_read_user);
  str("DB_READ_PASSWORD", c.db_read_password);
  if (!c.db_read_host.empty() && c.db_host.empty()) {
    e.push_back("DB_READ_HOST: needs DB_HOST (a MySQL/MariaDB primary); SQLite has no replicas");
  }
  if (c.db_read_host.empty() && (!c.db_read_user.empty() || !s.GetString("DB_READ_PORT").empty())) {
    e.push_back("DB_READ_PORT/DB_READ_USER: set DB_READ_HOST too, or neither");
  }
  str("SQLITE_PATH", c.sqlite_path);
  s.GetBool("DB_FSYNC", &c.db_fsync, e);
  str("BUS_URL", c.bus_url);
  if (!c.bus_url.empty()) {
    for (const auto& u : s.GetList("BUS_URL")) {
      if (u.rfind("nats://", 0) != 0 || u.size() <= 7) {
        e.push_back("BUS_URL: expected nats://HOST:PORT (comma-separated for a cluster), got '" +
                    u + "'");
      }
    }
  }
  str("BUS_STREAM", c.bus_stream);
  if (c.bus_stream.empty() || c.bus_stream.size() > 64 ||
      c.bus_stream.find_first_not_of(
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
          std::string::npos) {
    e.push_back("BUS_STREAM: 1-64 characters of letters, digits, '_' and '-', got '" +
                c.bus_stream + "'");
  }
  i64("BUS_PARTITIONS", c.bus_partitions, 1, 1024);
  i64("BUS_LEASE_SECONDS", c.bus_lease_seconds, 3, 3600);
  str("BUS_INSTANCE_ID", c.bus_instance_id);
  if (c.bus_instance_id.size() > 128) e.push_back("BUS_INSTANCE_ID: at most 128 characters");
  i64("BUS_PUBLISH_QUEUE_MAX", c.bus_publish_queue_max, 1, 100000000);
  i64("BUS_FETCH_BATCH", c.bus_fetch_batch, 1, 10000);
  i64("BUS_PUBLISH_TIMEOUT_MS", c.bus_publish_timeout_ms, 100, 600000);

  str("JWT_SECRET", c.jwt_secret);
  i64("JWT_TTL_SECONDS", c.jwt_ttl_s, 60, 30 * 86400);
  str("JWT_ISSUER", c.jwt_issuer);
  str("JWT_AUDIENCE", c.jwt_audience);
  str("ENCRYPTION_KEY", c.encryption_key);
  c.encryption_keys_old = s.GetList("ENCRYPTION_KEYS_OLD");
  str("ADMIN_USERNAME", c.admin_username);
  str("ADMIN_PASSWORD", c.admin_password);
  s.GetBool("ALLOW_REGISTRATION", &c.allow_registration, e);
  i64("PASSWORD_MIN_LENGTH", c.password_min_len, 1, 256);
  i64("LOGIN_MAX_FAILURES", c.login_max_failures, 1, 1000);
  i64("LOGIN_LOCKOUT_SECONDS", c.login_lockout_s, 1, 86400 * 30);
  i64("AUTH_RATE_LIMIT_PER_MINUTE", c.auth_rate_per_min, 1, 1000000);
  i64("API_RATE_LIMIT_PER_MINUTE", c.api_rate_per_min, 1, 10000000);
  i64("API_JSON_MAX_DEPTH", c.api_json_max_depth, 2, 512);
  if (s.Has("SECRET_HEADERS")) c.secret_headers = s.GetList("SECRET_HEADERS");
  str("METRICS_TOKEN", c.metrics_token);

  auto& l = c.event_limits;
  i64("EVENT_MAX_BYTES", l.max_event_bytes, 256, 16 << 20);
  i64("EVENT_MAX_DEPTH", l.max_depth, 2, 64);
  i64("EVENT_MAX_FIELD_LENGTH", l.max_field_len, 16, 1 << 20);
  i64("EVENT_MAX_ENDPOINT_LENGTH", l.max_endpoint_len, 16, 1 << 20);
  i64("EVENT_MAX_HEADERS", l.max_headers, 0, 10000);
  i64("EVENT_MAX_HEADER_VALUE_LENGTH", l.max_header_value_len, 16, 1 << 20);
  i64("EVENT_MAX_PAYLOAD_LENGTH", l.max_payload_len, 0, 1 << 24);
  i64("BATCH_MAX_EVENTS", c.batch_max_events, 1, 1000000);
  i64("INGEST_QUEUE_MAX", c.ingest_queue_max, 1, 100000000);
  i64("COMMIT_MAX_EVENTS", c.commit_max_events, 1, 1000000);
  i64("ENROLLMENT_TTL_SECONDS", c.enrollment_ttl_s, 60, 86400 * 365);

  i64("RATE_LIMIT_THRESHOLD", c.rate_limit_threshold, 1, 100000000);
  s.GetDouble("ANOMALY_ZSCORE_THRESHOLD", 0.1, 100, &c.anomaly_zscore_threshold, e);
  s.GetDouble("ML_CONTAMINATION", 0.0001, 0.5, &c.ml_contamination, e);
  i64("ML_RETRAIN_INTERVAL_SECONDS", c.ml_retrain_interval_s, 10, 86400 * 30);
  i64("DETECTION_BATCH_SIZE", c.detection_batch_size, 1, 1000000);
  i64("DETECTION_QUEUE_MAX", c.detection_queue_max, 1, 100000000);
  str("PAYLOAD_MODEL_FILE", c.payload_model_file);
  str("GEOIP_DB", c.geoip_db);

  str("SMTP_HOST", c.smtp_host);
  i64("SMTP_PORT", c.smtp_port, 1, 65535);
  str("SMTP_USER", c.smtp_user);
  str("SMTP_PASSWORD", c.smtp_password);
  str("ALERT_EMAIL_FROM", c.alert_email_from);
  c.alert_email_to = s.GetList("ALERT_EMAIL_TO");
  str("SLACK_WEBHOOK_URL", c.slack_webhook_url);
  str("WEBHOOK_URL", c.webhook_url);
  str("WEBHOOK_SECRET", c.webhook_secret);
  str("SMTP_TLS", c.smtp_tls);
  if (c.smtp_tls != "auto" && c.smtp_tls != "starttls" && c.smtp_tls != "smtps" &&
      c.smtp_tls != "none") {
    e.push_back("SMTP_TLS: must be auto, starttls, smtps or none, not '" + c.smtp_tls + "'");
  }
  str("SMTP_CA_FILE", c.smtp_ca_file);
  i64("ALERT_GROUP_WINDOW_SECONDS", c.alert_group_window_s, 1, 86400 * 30);
  i64("ALERT_RESOLVE_AFTER_SECONDS", c.alert_resolve_after_s, 1, 86400 * 365);
  i64("ALERT_DELIVERY_MAX_ATTEMPTS", c.alert_delivery_max_attempts, 1, 100);
  i64("ALERT_DELIVERY_BACKOFF_MS", c.alert_delivery_backoff_ms, 1, 3600000);
  i64("ALERT_DELIVERY_TIMEOUT_SECONDS", c.alert_delivery_timeout_s, 1, 600);
  i64("ALERT_DELIVERY_WORKERS", c.alert_delivery_workers, 2, 64);
  i64("ALERT_DELIVERY_QUEUE_MAX", c.alert_delivery_queue_max, 1, 10000000);
  i64("ALERT_DELIVERY_RESUME_HOURS", c.alert_delivery_resume_hours, 0, 24 * 365);
  s.GetBool("ALERT_ALLOW_PRIVATE_TARGETS", &c.alert_allow_private_targets, e);
  i64("WS_SEND_QUEUE_MAX", c.ws_send_queue_max, 1, 1000000);
  i64("ALERT_AUTOBLOCK_SECONDS", c.alert_autoblock_seconds, 0, 86400 * 365);
  i64("ALERT_AUTOBLOCK_MAX_SECONDS", c.alert_autoblock_max_seconds, 1, 86400 * 365);
  str("ALERT_AUTOBLOCK_MIN_SEVERITY", c.alert_autoblock_min_severity);
  s.GetBool("LLM_ENABLED", &c.llm_enabled, e);
  str("LLM_ENDPOINT", c.llm_endpoint);
  str("LLM_MODEL", c.llm_model);
  i64("LLM_TIMEOUT_MS", c.llm_timeout_ms, 10, 600000);
  i64("LLM_MAX_CONCURRENCY", c.llm_max_concurrency, 1, 64);
  i64("LLM_QUEUE_MAX", c.llm_queue_max, 1, 1000000);
  i64("LLM_CACHE_SIZE", c.llm_cache_size, 0, 10000000);
  str("DASHBOARD_DIR", c.dashboard_dir);

  if (c.sqlite_path.empty()) c.sqlite_path = c.data_dir + "/boing.db";
  if (c.public_url.empty()) {
    c.public_url = std::string(c.tls_cert_file.empty() ? "http" : "https") +
                   "://localhost:" + std::to_string(c.listen_port);
  }
  return e;
}

std::vector<std::string> ResolveSecrets(ServerConfig& c) {
  std::vector<std::string> e;
  const std::string jwt_hint = "generate one with: openssl rand -base64 48";
  const std::string key_hint =
      "a Fernet key (44 characters, e.g. python3 -c 'from cryptography.fernet import Fernet; "
      "print(Fernet.generate_key().decode())') or exactly 32 characters";
  if (c.production) {
    if (c.jwt_secret.empty()) {
      e.push_back("JWT_SECRET: required in production; " + jwt_hint);
    } else if (c.jwt_secret.size() < 32 || IsWeak(c.jwt_secret)) {
      e.push_back("JWT_SECRET: too weak (needs at least 32 characters, not an example value); " +
                  jwt_hint);
    }
    if (c.encryption_key.empty()) {
      e.push_back("ENCRYPTION_KEY: required in production; set " + key_hint);
    } else if (IsWeak(c.encryption_key)) {
      e.push_back("ENCRYPTION_KEY: the example value is not a secret; set " + key_hint);
    }
  } else if (c.jwt_secret.empty() || c.encryption_key.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(c.data_dir, ec);
    std::string path = c.data_dir + "/secrets.env";
    Settings kept;
    std::string err;
    if (std::filesystem::exists(path) && !kept.LoadEnvFile(path, &err)) e.push_back(err);
    bool changed = false;
    if (c.jwt_secret.empty()) {
      if (!kept.Has("JWT_SECRET")) {
        kept.Set("JWT_SECRET", crypto::RandomToken(48));
        changed = true;
      }
      c.jwt_secret = kept.GetString("JWT_SECRET");
    }
    if (c.encryption_key.empty()) {
      if (!kept.Has("ENCRYPTION_KEY")) {
        kept.Set("ENCRYPTION_KEY", crypto::Fernet::GenerateKey());
        changed = true;
      }
      c.encryption_key = kept.GetString("ENCRYPTION_KEY");
    }
    if (changed) {
      std::string tmp = path + ".tmp";
      {
        std::ofstream out(tmp, std::ios::trunc);
        out << "# Generated by boing-server in local mode. Keep this file private.\n";
        out << "JWT_SECRET=" << kept.GetString("JWT_SECRET") << "\n";
        out << "ENCRYPTION_KEY=" << kept.GetString("ENCRYPTION_KEY") << "\n";
        if (!out) e.push_back(path + ": cannot write generated secrets");
      }
      ::chmod(tmp.c_str(), 0600);
      std::filesystem::rename(tmp, path, ec);
      if (ec) e.push_back(path + ": " + ec.message());
    }
  }
  bool key_reported = false;
  for (const auto& m : e) key_reported = key_reported || m.rfind("ENCRYPTION_KEY:", 0) == 0;
  if (!c.encryption_key.empty() && !key_reported) {
    std::string err;
    if (!crypto::Fernet::FromConfigKey(c.encryption_key, &err))
      e.push_back("ENCRYPTION_KEY: invalid (" + err + "); set " + key_hint);
  }
  for (size_t i = 0; i < c.encryption_keys_old.size(); ++i) {
    const auto& k = c.encryption_keys_old[i];
    std::string err;
    if (!crypto::Fernet::FromConfigKey(k, &err))
      e.push_back("ENCRYPTION_KEYS_OLD: key #" + std::to_string(i + 1) + " invalid");
  }
  return e;
}

}  // namespace boing
