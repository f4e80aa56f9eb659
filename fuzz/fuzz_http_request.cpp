// The server's own request handling around Beast's parser (server/http): gzip request bodies
// (bounded inflate), percent-decoding of paths and query strings, query parameter lookup and
// route matching on hostile paths. Beast itself parses the HTTP and WebSocket framing; the
// WebSocket ingest messages go through the same codec as fuzz_event_json.
//
// Input: byte 0 selects the limit, then the bytes (a gzip body, a path, a query).
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "boing/http.h"
#include "fuzz_util.h"
#include "internal.h"

using namespace boing::http;

namespace {

Router& TheRouter() {
  static Router* r = [] {
    auto* router = new Router();
    Handler h = [](Request&) -> asio::awaitable<Response> { co_return Response{}; };
    for (const char* p : {"/api/apis", "/api/apis/:id", "/api/apis/:id/keys/:key", "/api/users/me",
                          "/api/users/:id", "/api/events/export", "/api/:section/:id/x"}) {
      router->Add("GET", p, h);
    }
    router->Add("POST", "/api/apis/:id", h);
    router->AddWebSocket("/ws/ingest", nullptr, nullptr);
    return router;
  }();
  return *r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t limit = size_t{data[0]} * 64;

  std::string out;
  switch (internal::Gunzip(text, limit, out)) {
    case internal::GunzipResult::kOk:
      BOING_FUZZ_CHECK(out.size() <= limit);
      break;
    case internal::GunzipResult::kTooLarge:
    case internal::GunzipResult::kCorrupt:
      break;
  }

  for (bool plus : {false, true}) {
    std::string d = PercentDecode(text, plus);
    BOING_FUZZ_CHECK(d.size() <= text.size());
  }

  Request req;
  size_t q = text.find('?');
  req.path = PercentDecode(text.substr(0, q), false);
  req.query = q == std::string_view::npos ? "" : std::string(text.substr(q + 1));
  for (const char* name : {"limit", "token", "", "a b"}) req.QueryParam(name);

  std::map<std::string, std::string> params;
  Router& r = TheRouter();
  for (const char* method : {"GET", "POST", "HEAD", "DELETE"}) {
    params.clear();
    Router::Match m = r.Find(method, req.path, false, params);
    if (m.handler) BOING_FUZZ_CHECK(m.path_known);
  }
  params.clear();
  r.Find("GET", req.path, true, params);
  r.AllowedMethods(req.path);
  return 0;
}
