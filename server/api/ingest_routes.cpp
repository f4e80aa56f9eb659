// Ingest: single events from instrumented applications, batches from agents (or applications),
// and a WebSocket stream. Every path validates and bounds events, scrubs secret headers into the
// identity hash, and answers only after the group commit that stored the events.
#include <strings.h>

#include <algorithm>

#include "app.h"
#include "boing/log.h"

namespace boing {
namespace {

std::string HashHex(std::string_view secret) { return crypto::Hex(crypto::Sha256(secret)); }

std::string_view BearerToken(const http::Request& req) {
  std::string_view h = req.Header("Authorization");
  if (h.size() > 7 && (h.substr(0, 7) == "Bearer " || h.substr(0, 7) == "bearer ")) {
    return h.substr(7);
  }
  return {};
}

const char* OutcomeName(InsertOutcome o) {
  return o == InsertOutcome::kInserted ? "accepted" : "duplicate";
}

}  // namespace

namespace {
// Not a key (never matches): makes ApiForKey load or refresh the cache for MatchApi.
const std::string kCacheProbe = "\x01";
}  // namespace

std::optional<Api> App::ApiForKey(const std::string& api_key, bool* unavailable) {
  if (unavailable) *unavailable = false;
  if (api_key.empty() || api_key.size() > 256) return std::nullopt;
  const std::string hash = HashHex(api_key);
  const bool shared = !cfg_.bus_url.empty();
  const int64_t now = NowMillis();
  bool reload = false;
  {
    std::shared_lock lock(cache_mu_);
    if (api_cache_loaded_ && (!shared || now - api_cache_loaded_ms_ < kSharedCacheMs)) {
      auto it = api_by_key_hash_.find(hash);
      if (it != api_by_key_hash_.end()) return it->second;
      if (!shared || api_key == kCacheProbe) return std::nullopt;
    }
    reload = api_cache_loaded_;
  }
  if (reload && api_cache_loaded_ms_ >= now - kSharedCacheMs) {
    // Fresh cache, unknown key: another instance may have created it a moment ago.
    auto a = store_->GetApiByKeyHash(hash);
    if (!a) {
      if (unavailable && !store_->Ping().ok) *unavailable = true;  // unknown, not refused
      return std::nullopt;
    }
    std::unique_lock lock(cache_mu_);
    api_by_key_hash_[hash] = *a;
    return a;
  }
  std::unique_lock lock(cache_mu_);
  if (reload && api_cache_loaded_ && api_cache_loaded_ms_ < now) {  // not reloaded meanwhile
    api_cache_loaded_ = false;
    api_names_.clear();
  }
  if (!api_cache_loaded_) {
    std::vector<Api> apis = store_->ListApis(std::nullopt);
    if (apis.empty() && !store_->Ping().ok) {
      // The database is down: an empty list says nothing about the keys. Load next time
      // (caching it would refuse every key with 401 until the next API change).
      if (unavailable) *unavailable = true;
      return std::nullopt;
    }
    api_by_key_hash_.clear();
    api_rules_.clear();
    for (auto& a : apis) {
      if (!a.match_host.empty() || a.match_port != 0 || !a.match_base_path.empty()) {
        api_rules_.push_back(a);
      }
      api_by_key_hash_.emplace(a.ingest_key_hash, std::move(a));
    }
    // Most specific rule first: more criteria set, then the longer base path.
    std::sort(api_rules_.begin(), api_rules_.end(), [](const Api& x, const Api& y) {
      auto score = [](const Api& a) {
        return (a.match_host.empty() ? 0 : 4) + (a.match_port ? 2 : 0) +
               (a.match_base_path.empty() ? 0 : 1);
      };
      if (score(x) != score(y)) return score(x) > score(y);
      return x.match_base_path.size() > y.match_base_path.size();
    });
    api_cache_loaded_ = true;
    api_cache_loaded_ms_ = now;
  }
  auto it = api_by_key_hash_.find(hash);
  if (it == api_by_key_hash_.end()) return std::nullopt;
  return it->second;
}

int64_t App::MatchApi(const Event& e) {
  ApiForKey(kCacheProbe);  // loads the cache when needed
  // `host` is a convenience copy of the Host header (EVENTS.md): the header alone must do too.
  std::string host = e.host;
  if (host.empty()) {
    for (const auto& [name, value] : e.headers) {
      if (name.size() == 4 && strncasecmp(name.c_str(), "host", 4) == 0) {
        host = value;
        break;
      }
    }
  }
  // The port of a Host value is not part of the host ("[::1]:8080" → "[::1]"); names compare
  // case-insensitively.
  if (!host.empty() && host.front() == '[') {
    if (auto close = host.find(']'); close != std::string::npos) host.resize(close + 1);
  } else if (auto colon = host.find(':'); colon != std::string::npos) {
    host.resize(colon);
  }
  std::shared_lock lock(cache_mu_);
  for (const Api& a : api_rules_) {
    if (!a.match_host.empty() &&
        (a.match_host.size() != host.size() ||
         strncasecmp(a.match_host.c_str(), host.c_str(), host.size()) != 0)) {
      continue;
    }
    if (a.match_port != 0 && (!e.server_port || *e.server_port != a.match_port)) continue;
    if (!a.match_base_path.empty() && e.endpoint.rfind(a.match_base_path, 0) != 0) continue;
    return a.id;
  }
  return 0;
}

void App::RegisterIngest(http::Router& r) {
  r.Add("POST", "/api/ingest", [this](http::Request& req) -> asio::awaitable<http::Response> {
    ++ingest_requests;
    Event e;
    if (auto err = ParseEvent(req.body, cfg_.event_limits, e)) {
      ++ingest_rejected;
      co_return http::Response::Error(400, err->message, err->field);
    }
    if (e.api_key.empty()) e.api_key = std::string(req.Header("X-Api-Key"));
    bool unavailable = false;
    auto api = ApiForKey(e.api_key, &unavailable);
    if (unavailable) co_return Unavailable(Status::Unavailable("api keys not loaded"));
    if (!api) {
      ++ingest_rejected;
      co_return http::Response::Error(401, "unknown or missing api_key", "api_key");
    }
    e.api_id = api->id;
    e.api_key.clear();
    ScrubSecrets(e, identity_key_, cfg_.secret_headers);
    std::vector<Event> events;
    events.push_back(std::move(e));
    IngestResult res = co_await Commit(std::move(events));
    if (!res.status.ok) co_return StoreError(res.status);
    if (res.outcomes[0] == InsertOutcome::kDuplicate) {
      co_return http::Response::Json(200, R"({"status":"duplicate"})");
    }
    co_return http::Response::Json(
        200, R"({"status":"accepted","id":)" + std::to_string(res.ids[0]) + "}");
  });

  r.Add("POST", "/api/ingest/batch", [this](http::Request& req) -> asio::awaitable<http::Response> {
    ++ingest_requests;
    std::optional<Agent> agent;
    std::optional<Api> header_api;
    if (auto token = BearerToken(req); !token.empty()) {
      agent = AgentForToken(token);
      if (!agent) co_return UnknownAgentToken();
    } else if (auto key = req.Header("X-Api-Key"); !key.empty()) {
      bool unavailable = false;
      header_api = ApiForKey(std::string(key), &unavailable);
      if (unavailable) co_return Unavailable(Status::Unavailable("api keys not loaded"));
      if (!header_api) co_return http::Response::Error(401, "unknown api key", "X-Api-Key");
    }
    std::vector<BatchItem> items;
    if (auto err = ParseEventBatch(req.body, cfg_.event_limits, items, cfg_.batch_max_events)) {
      ++ingest_rejected;
      co_return http::Response::Error(400, err->message, err->field);
    }
    std::vector<Event> events;
    std::vector<size_t> positions;  // item index of each event sent to the writer
    events.reserve(items.size());
    for (auto& it : items) {
      if (it.error) continue;
      Event& e = it.event;
      if (agent) {
        if (e.agent_id.empty()) e.agent_id = agent->agent_id;
        if (e.agent_id != agent->agent_id) {
          it.error = ParseError{"agent_id", "agent_id does not match the agent token"};
          continue;
        }
        e.api_id = MatchApi(e);
      } else {
        std::optional<Api> api = header_api;
        bool unavailable = false;
        if (!e.api_key.empty()) api = ApiForKey(e.api_key, &unavailable);
        if (unavailable) co_return Unavailable(Status::Unavailable("api keys not loaded"));
        if (!api) {
          it.error = ParseError{"api_key", "unknown or missing api_key"};
          continue;
        }
        e.api_id = api->id;
      }
      e.api_key.clear();
      ScrubSecrets(e, identity_key_, cfg_.secret_headers);
      positions.push_back(it.index);
      events.push_back(std::move(e));
    }
    IngestResult res;
    if (!events.empty()) {
      res = co_await Commit(std::move(events));
      if (!res.status.ok) co_return StoreError(res.status);
    }
    size_t accepted = 0, duplicates = 0, rejected = 0;
    std::string out;
    out.reserve(items.size() * 40 + 100);
    out += R"({"results":[)";
    size_t k = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += ',';
      out += R"({"index":)" + std::to_string(items[i].index) + R"(,"status":")";
      if (items[i].error) {
        ++rejected;
        Json err = {{"error", items[i].error->message}, {"field", items[i].error->field}};
        out += "rejected\",";
        std::string e = err.dump(-1, ' ', false, Json::error_handler_t::replace);
        out.append(e, 1, e.size() - 1);  // splice the object's members
      } else {
        InsertOutcome o = res.outcomes[k++];
        (o == InsertOutcome::kInserted ? accepted : duplicates)++;
        out += OutcomeName(o);
        out += "\"}";
      }
    }
    ingest_rejected += rejected;
    out += "],\"accepted\":" + std::to_string(accepted) +
           ",\"duplicates\":" + std::to_string(duplicates) +
           ",\"rejected\":" + std::to_string(rejected) + "}";
    co_return http::Response::Json(200, std::move(out));
  });

  // Agents authenticate the connection (Authorization header or ?token=); applications put their
  // api_key in each message.
  auto authorize = [this](http::Request& req) -> std::optional<http::Response> {
    std::string token(BearerToken(req));
    if (token.empty()) token = req.QueryParam("token").value_or("");
    if (token.empty()) return std::nullopt;
    if (!AgentForToken(token)) return UnknownAgentToken();
    return std::nullopt;
  };
  r.AddWebSocket(
      "/ws/ingest", authorize,
      [this](http::Request& req, http::WsConnection& ws) -> asio::awaitable<void> {
        std::string token(BearerToken(req));
        if (token.empty()) token = req.QueryParam("token").value_or("");
        std::optional<Agent> agent = token.empty() ? std::nullopt : AgentForToken(token);
        bool keys_unavailable = false;
        for (;;) {
          auto msg = co_await ws.Read();
          if (!msg) co_return;
          ++ingest_requests;
          Event e;
          Json reply;
          auto err = ParseEvent(*msg, cfg_.event_limits, e);
          if (!err) {
            if (agent) {
              if (e.agent_id.empty()) e.agent_id = agent->agent_id;
              if (e.agent_id != agent->agent_id) {
                err = ParseError{"agent_id", "agent_id does not match the agent token"};
              } else {
                e.api_id = MatchApi(e);
              }
            } else if (auto api = ApiForKey(e.api_key, &keys_unavailable)) {
              e.api_id = api->id;
            } else if (!keys_unavailable) {
              err = ParseError{"api_key", "unknown or missing api_key"};
            }
          }
          if (e.seq) reply["seq"] = *e.seq;
          if (keys_unavailable) {
            keys_unavailable = false;
            reply["status"] = "unavailable";
            reply["error"] = "storage unavailable, retry later";
          } else if (err) {
            ++ingest_rejected;
            reply["status"] = "rejected";
            reply["error"] = err->message;
            reply["field"] = err->field;
          } else {
            e.api_key.clear();
            ScrubSecrets(e, identity_key_, cfg_.secret_headers);
            std::vector<Event> one;
            one.push_back(std::move(e));
            IngestResult res = co_await Commit(std::move(one));
            if (!res.status.ok) {
              reply["status"] = "unavailable";
              reply["error"] = "storage unavailable, retry later";
            } else {
              reply["status"] = OutcomeName(res.outcomes[0]);
              if (res.outcomes[0] == InsertOutcome::kInserted) reply["id"] = res.ids[0];
            }
          }
          if (!co_await ws.Write(reply.dump(-1, ' ', false, Json::error_handler_t::replace))) {
            co_return;
          }
        }
      });
}

}  // namespace boing
