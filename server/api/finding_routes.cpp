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
          auto visible = VisibleApis(p);
          auto number = [&](const char* name, double* out) -> bool {
            auto v = req.QueryParam(name);
            if (!v || v->empty()) return true;
            char* end = nullptr;
            double d = std::strtod(v->c_str(), &end);
            if (end == v->c_str() || *end != '\0' || !std::isfinite(d) || d < 0) return false;
            *out = d;
            return true;
          };
          double api_id = 0, event_id = 0, limit = 100, before = 0;
          if (!number("api_id", &api_id) || api_id != std::floor(api_id)) {
            return http::Response::Error(400, "api_id must be an integer", "api_id");
          }
          if (api_id > 0) {
            auto id = static_cast<int64_t>(api_id);
            if (visible && std::find(visible->begin(), visible->end(), id) == visible->end()) {
              return http::Response::Error(404, "API not found", "api_id");
            }
            f.api_ids = {id};
            f.restrict_to_apis = true;
          } else if (visible) {
            f.api_ids = *visible;
            f.restrict_to_apis = true;
          }
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
          if (!number("event_id", &event_id)) {
            return http::Response::Error(400, "event_id must be a number", "event_id");
          }
          f.event_id = static_cast<int64_t>(event_id);
          if (!number("from", &f.from_ts))
            return http::Response::Error(400, "from must be a number", "from");
          if (!number("to", &f.to_ts))
            return http::Response::Error(400, "to must be a number", "to");
          if (!number("limit", &limit) || limit < 1 || limit > 1000) {
            return http::Response::Error(400, "limit must be 1 to 1000", "limit");
          }
          f.limit = static_cast<int>(limit);
          if (!number("cursor", &before)) {
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
