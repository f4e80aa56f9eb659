// boing-server: parse configuration, open storage, wire the application onto the HTTP core, run.
#include <sys/stat.h>

#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "analyze.h"
#include "app.h"
#include "boing/log.h"

namespace {

constexpr const char* kUsage = R"(usage: boing-server [serve|routes|check|analyze|train] [options]

  serve (default)      run the server
  routes               print every HTTP/WebSocket route as JSON and exit
  check                validate the configuration, open the database, and exit
  analyze              run the detection pipeline on stdin: events as NDJSON (the ingest
                       format), or with --values one raw parameter value per line; writes one
                       JSON line per input line: {"findings":[{"detector","severity",...}]}
  train                train the payload classifier on a labelled CSV (--data) and write the
                       model (--out, default DATA_DIR/payload_classifier.model, which the
                       server then loads instead of the built-in model)

options:
  --listen HOST:PORT   listen address (default 0.0.0.0:8000; port 0 picks a free port)
  --data-dir DIR       data directory (SQLite database, generated secrets; default .data)
  --config FILE        env-file with KEY=VALUE settings (see .env.example)
  --threads N          I/O threads (default 2)
  --production         production mode (same as BOING_ENV=production)
  --version            print the version and exit
  --check              the same as the check command
  --values             (analyze) read one raw value per line instead of events
  --format F           (analyze) ndjson (default) or combined (nginx/Apache access log)
  --data FILE.csv      (train) labelled values: a header row with payload,label columns; the
                       benign label is one of norm, normal, benign, clean, valid, 0
  --out FILE           (train) where to write the model
  --value-column NAME  (train) column holding the values (default payload)
  --label-column NAME  (train) column holding the labels (default label)
  --rows all|even|odd  (train) train on every data row (default) or every other one

Every setting is also read from the environment; see .env.example. Later sources win:
--config file < environment < flags.
)";

int Fail(const std::vector<std::string>& errors) {
  for (const auto& e : errors) std::fprintf(stderr, "boing-server: %s\n", e.c_str());
  return 2;
}

std::unique_ptr<boing::Store> OpenStore(const boing::ServerConfig& cfg, std::string* error) {
  if (cfg.db_host.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(cfg.sqlite_path).parent_path(), ec);
    boing::SqliteOptions o;
    o.path = cfg.sqlite_path;
    o.fsync_full = cfg.db_fsync;
    o.pool_size = std::max(2, cfg.threads);
    return boing::OpenSqliteStore(o, error);
  }
  boing::MysqlOptions o;
  o.host = cfg.db_host;
  o.port = cfg.db_port;
  o.user = cfg.db_user;
  o.password = cfg.db_password;
  o.database = cfg.db_name;
  o.pool_size = cfg.db_pool_size;
  o.read_host = cfg.db_read_host;
  o.read_port = cfg.db_read_port;
  o.read_user = cfg.db_read_user;
  o.read_password = cfg.db_read_password;
  return boing::OpenMysqlStore(o, error);
}

// Local mode with an empty database and no ADMIN_USERNAME: create `admin` with a random password
// kept in DATA_DIR/initial-admin-password (0600), so a first run can be logged into at once.
void EnsureFirstAdmin(boing::App& app) {
  const auto& cfg = app.config();
  if (cfg.production || !cfg.admin_username.empty() || app.store().CountUsers() > 0) return;
  std::string password = boing::crypto::RandomToken(12);
  boing::User u;
  u.username = "admin";
  u.password_hash = boing::crypto::HashPassword(password);
  u.role = "admin";
  u.created_at = boing::NowSeconds();
  if (!app.store().CreateUser(u).ok) return;
  std::string path = cfg.data_dir + "/initial-admin-password";
  {
    std::ofstream out(path, std::ios::trunc);
    out << password << "\n";
  }
  ::chmod(path.c_str(), 0600);
  boing::log::Info("initial admin account created",
                   {{"username", "admin"}, {"password_file", path}});
}

}  // namespace

int main(int argc, char** argv) {
  std::string command = "serve";
  int first = 1;
  if (argc > 1 && argv[1][0] != '-') {
    command = argv[1];
    first = 2;
  }
  if (command != "serve" && command != "routes" && command != "check" && command != "analyze" &&
      command != "train") {
    std::fprintf(stderr, "boing-server: unknown command '%s'\n\n%s", command.c_str(), kUsage);
    return 2;
  }
  boing::Settings settings;
  std::vector<std::pair<std::string, std::string>> flags;
  std::string config_file;
  boing::AnalyzeOptions analyze;
  boing::TrainCommand train;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> std::optional<std::string> {
      std::string prefix = std::string(name) + "=";
      if (a.rfind(prefix, 0) == 0) return a.substr(prefix.size());
      if (a == name && i + 1 < argc) return std::string(argv[++i]);
      return std::nullopt;
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--check" && command == "serve") {
      command = "check";  // the same as the `check` command, for tools that expect a flag
    } else if (a == "--version") {
      std::printf("boing-server %s\n", BOING_VERSION);
      return 0;
    } else if (a == "--values" && command == "analyze") {
      analyze.values = true;
    } else if (auto v = command == "analyze" ? value("--format") : std::nullopt) {
      if (*v != "ndjson" && *v != "combined") return Fail({"--format: ndjson or combined"});
      analyze.combined = *v == "combined";
    } else if (auto v = command == "train" ? value("--data") : std::nullopt) {
      train.data = *v;
    } else if (auto v = command == "train" ? value("--out") : std::nullopt) {
      train.out = *v;
    } else if (auto v = command == "train" ? value("--value-column") : std::nullopt) {
      train.value_column = *v;
    } else if (auto v = command == "train" ? value("--label-column") : std::nullopt) {
      train.label_column = *v;
    } else if (auto v = command == "train" ? value("--rows") : std::nullopt) {
      if (*v != "all" && *v != "even" && *v != "odd") return Fail({"--rows: all, even or odd"});
      train.rows = *v;
    } else if (a == "--production") {
      flags.emplace_back("BOING_ENV", "production");
    } else if (auto v = value("--listen")) {
      flags.emplace_back("LISTEN", *v);
    } else if (auto v = value("--data-dir")) {
      flags.emplace_back("DATA_DIR", *v);
    } else if (auto v = value("--threads")) {
      flags.emplace_back("THREADS", *v);
    } else if (auto v = value("--config")) {
      config_file = *v;
    } else {
      std::fprintf(stderr, "boing-server: unknown option '%s'\n\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  std::string err;
  if (!config_file.empty() && !settings.LoadEnvFile(config_file, &err)) return Fail({err});
  settings.LoadEnvironment(boing::ServerConfigVariables());
  for (auto& [k, v] : flags) settings.Set(k, v);

  boing::ServerConfig cfg;
  if (auto errors = boing::LoadServerConfig(settings, cfg); !errors.empty()) return Fail(errors);

  if (command == "train") return boing::RunTrain(cfg, train, std::cout, std::cerr);

  if (command == "analyze") {
    std::ios::sync_with_stdio(false);
    return boing::RunAnalyze(cfg, analyze, std::cin, std::cout);
  }

  if (command == "routes") {
    boing::App app(cfg, nullptr);
    auto router = std::make_shared<boing::http::Router>();
    app.Register(*router);
    boing::Json out = boing::Json::array();
    for (const auto& r : router->Routes()) {
      out.push_back({{"method", r.method}, {"pattern", r.pattern}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }

  boing::log::Options lo;
  lo.min_level = boing::log::ParseLevel(cfg.log_level);
  lo.file = cfg.log_file;
  lo.max_file_bytes = static_cast<uint64_t>(cfg.log_max_bytes);
  lo.max_files = cfg.log_max_files;
  boing::log::Configure(lo);

  if (auto errors = boing::ResolveSecrets(cfg); !errors.empty()) return Fail(errors);

  auto store = OpenStore(cfg, &err);
  if (!store) return Fail({"database: " + err});
  auto app = std::make_unique<boing::App>(cfg, std::move(store));
  if (!app->Init(&err)) return Fail({err});
  if (command == "check") {
    std::printf("configuration ok; database %s reachable; %lld events stored\n",
                app->store().Backend().c_str(), static_cast<long long>(app->store().CountEvents()));
    return 0;
  }
  EnsureFirstAdmin(*app);

  auto router = std::make_shared<boing::http::Router>();
  app->Register(*router);

  boing::http::ServerOptions so;
  so.host = cfg.listen_host;
  so.port = cfg.listen_port;
  so.threads = cfg.threads;
  so.max_body_bytes = cfg.max_body_bytes;
  so.max_header_bytes = cfg.max_header_bytes;
  so.read_timeout = std::chrono::seconds(cfg.read_timeout_s);
  so.idle_timeout = std::chrono::seconds(cfg.idle_timeout_s);
  so.drain_timeout = std::chrono::seconds(cfg.drain_timeout_s);
  so.tls_cert_file = cfg.tls_cert_file;
  so.tls_key_file = cfg.tls_key_file;
  so.trusted_proxies = cfg.trusted_proxies;
  so.cors_origins = cfg.cors_origins;
  boing::http::Server server(so, router);
  boing::App* app_ptr = app.get();
  const bool access_log = cfg.access_log;
  server.SetAccessLog([app_ptr, access_log](const boing::http::AccessRecord& r) {
    int cls = r.status / 100;
    if (cls >= 1 && cls <= 5) app_ptr->http_responses[cls]++;
    if (access_log) {
      boing::log::Info("request", {{"method", r.method},
                                   {"path", r.target.substr(0, r.target.find('?'))},
                                   {"status", r.status},
                                   {"client_ip", r.client_ip},
                                   {"ms", r.duration_ms},
                                   {"bytes", r.bytes_out}});
    }
  });
  if (!server.Start(&err)) return Fail({"listen: " + err});

  boost::asio::signal_set signals(server.Context(), SIGTERM, SIGINT);
  signals.async_wait([&server](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    boing::log::Info("shutting down", {{"signal", sig}});
    server.Stop();
  });

  const std::string scheme = cfg.tls_cert_file.empty() ? "http" : "https";
  const std::string shown_host =
      cfg.listen_host == "0.0.0.0" || cfg.listen_host == "::" ? "localhost" : cfg.listen_host;
  const std::string url =
      scheme + "://" +
      (shown_host.find(':') != std::string::npos ? "[" + shown_host + "]" : shown_host) + ":" +
      std::to_string(server.Port());
  boing::log::Info("listening", {{"url", url},
                                 {"port", static_cast<int>(server.Port())},
                                 {"database", app->store().Backend()},
                                 {"mode", cfg.production ? "production" : "local"},
                                 {"threads", cfg.threads}});
  server.Run();
  // From here on a repeated SIGTERM/SIGINT (systemd, an impatient operator, a test harness) must
  // not cut the final flush short, nor kill the process with the default action while the store
  // and its connections are torn down: ignore them; the flush is bounded, SIGKILL still works.
  signals.clear();
  std::signal(SIGTERM, SIG_IGN);
  std::signal(SIGINT, SIG_IGN);
  app->Shutdown();
  boing::log::Info("stopped");
  boing::log::Flush();
  return 0;
}
