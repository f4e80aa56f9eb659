// Findings of the detection pipeline: filtered, newest first, keyset-paginated.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "app.h"

namespace boing {

void App::RegisterFindings(http::Router& r) {
  r.Add("GET", "/api/findings",
        Authed(Access::kUser, [this](http::Request& req, const Principal& p) -> http::Response {
          FindingFilter f;
          if (auto e = ScopeToApis(req, p, f.api_ids, f.restrict_to_apis)) return *e;
          double event_id = 0, limit = 100, before = 0;
          f.detector = req.QueryParam("detector").value_or("");
          if (auto sev = req.QueryParam("severity"); sev && !sev->empty()) {
            detect::Severity s;
            if (!detect::ParseSeverity(*sev, &s)) {
              return http::Response::Error(
                  400, "severity must be one of info, low, medium, high, critical", "severity");
            }
            f.min_severity_rank = static_cast<int>(s);
          }
          f.actor = req.QueryParam("actor").value_or("");
          f.client_ip = req.QueryParam("client_ip").value_or("");
          if (!QueryNumber(req, "event_id", &event_id)) {
            return http::Response::Error(400, "event_id must be a number", "event_id");
          }
          f.event_id = static_cast<int64_t>(event_id);
          if (!QueryNumber(req, "from", &f.from_ts))
            return http::Response::Error(400, "from must be a number", "from");
          if (!QueryNumber(req, "to", &f.to_ts))
            return http::Response::Error(400, "to must be a number", "to");
          if (!QueryNumber(req, "limit", &limit) || limit < 1 || limit > 1000) {
            return http::Response::Error(400, "limit must be 1 to 1000", "limit");
          }
          f.limit = static_cast<int>(limit);
          if (!QueryNumber(req, "cursor", &before)) {
            return http::Response::Error(400, "cursor is not valid", "cursor");
          }
          f.before_id = static_cast<int64_t>(before);
          auto rows = store_->QueryFindings(f);
          Json list = Json::array();
          for (const auto& row : rows) list.push_back(FindingRecordJson(row));
          Json out = {{"findings", list}, {"next_cursor", nullptr}};
          if (static_cast<int>(rows.size()) == f.limit)
            out["next_cursor"] = std::to_string(rows.back().id);
          return http::Response::Json(200,
                                      out.dump(-1, ' ', false, Json::error_handler_t::replace));
        }));
}

}  // namespace boing
