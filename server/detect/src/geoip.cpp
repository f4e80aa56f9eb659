#include "boing/detect/geoip.h"

#include <arpa/inet.h>
#include <maxminddb.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>

namespace boing::detect {

struct GeoIp::Db {
  MMDB_s mmdb{};
  std::string path;
  bool open = false;
  bool flat = true;  // ip-location-db's flat records; false: MaxMind's City layout
  ~Db() {
    if (open) MMDB_close(&mmdb);
  }
};

GeoIp::~GeoIp() = default;

std::shared_ptr<const GeoIp> GeoIp::Open(const std::vector<std::string>& paths,
                                         std::string* error) {
  if (paths.empty()) {
    if (error) *error = "no database file given";
    return nullptr;
  }
  std::shared_ptr<GeoIp> g(new GeoIp());
  for (const auto& p : paths) {
    auto db = std::make_unique<Db>();
    db->path = p;
    int rc = MMDB_open(p.c_str(), MMDB_MODE_MMAP, &db->mmdb);
    if (rc != MMDB_SUCCESS) {
      if (error) {
        *error = p + ": " + MMDB_strerror(rc);
        if (rc == MMDB_IO_ERROR && errno) *error += std::string(" (") + std::strerror(errno) + ")";
      }
      return nullptr;
    }
    db->open = true;
    // The record layout, from the database type: MaxMind's are "GeoIP2-City", "GeoLite2-City"...
    const char* type = db->mmdb.metadata.database_type;
    db->flat =
        !(type && (std::strncmp(type, "GeoIP2", 6) == 0 || std::strncmp(type, "GeoLite2", 8) == 0 ||
                   std::strncmp(type, "DBIP-", 5) == 0));
    g->dbs_.push_back(std::move(db));
  }
  return g;
}

namespace {

// The string at `path` (NULL-terminated list of keys) in the entry, or "" when absent.
template <class... Keys>
std::string String(MMDB_entry_s* entry, Keys... keys) {
  MMDB_entry_data_s d{};
  if (MMDB_get_value(entry, &d, keys..., nullptr) != MMDB_SUCCESS || !d.has_data ||
      d.type != MMDB_DATA_TYPE_UTF8_STRING) {
    return {};
  }
  return std::string(d.utf8_string, d.data_size);
}

template <class... Keys>
std::optional<double> Number(MMDB_entry_s* entry, Keys... keys) {
  MMDB_entry_data_s d{};
  if (MMDB_get_value(entry, &d, keys..., nullptr) != MMDB_SUCCESS || !d.has_data) {
    return std::nullopt;
  }
  double v;
  if (d.type == MMDB_DATA_TYPE_DOUBLE) {
    v = d.double_value;
  } else if (d.type == MMDB_DATA_TYPE_FLOAT) {
    v = d.float_value;
  } else {
    return std::nullopt;
  }
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

}  // namespace

std::optional<GeoLocation> GeoIp::Lookup(std::string_view ip) const {
  if (ip.empty() || ip.size() > 64 || ip.find('\0') != std::string_view::npos) return std::nullopt;
  // An IPv4-mapped IPv6 address ("::ffff:8.8.8.8") is looked up as the IPv4 address it carries.
  if (ip.size() > 7 && ip.find('.') != std::string_view::npos) {
    std::string_view head = ip.substr(0, 7);
    if (head == "::ffff:" || head == "::FFFF:") ip.remove_prefix(7);
  }
  char buf[65];
  std::memcpy(buf, ip.data(), ip.size());
  buf[ip.size()] = '\0';
  // inet_pton rather than MMDB_lookup_string's getaddrinfo: several times faster.
  sockaddr_in sin{};
  sockaddr_in6 sin6{};
  const sockaddr* sa;
  if (inet_pton(AF_INET, buf, &sin.sin_addr) == 1) {
    sin.sin_family = AF_INET;
    sa = reinterpret_cast<const sockaddr*>(&sin);
  } else if (inet_pton(AF_INET6, buf, &sin6.sin6_addr) == 1) {
    sin6.sin6_family = AF_INET6;
    sa = reinterpret_cast<const sockaddr*>(&sin6);
  } else {
    return std::nullopt;  // not an address: no file will know it
  }
  const bool v6 = sa->sa_family == AF_INET6;
  for (const auto& db : dbs_) {
    if (v6 && db->mmdb.metadata.ip_version != 6) continue;
    int mmdb_error = MMDB_SUCCESS;
    MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&db->mmdb, sa, &mmdb_error);
    if (mmdb_error != MMDB_SUCCESS || !r.found_entry) continue;
    GeoLocation loc;
    std::optional<double> lat, lon;
    if (db->flat) {
      loc.country = String(&r.entry, "country_code");
      loc.city = String(&r.entry, "city");
      lat = Number(&r.entry, "latitude");
      lon = Number(&r.entry, "longitude");
    } else {
      loc.country = String(&r.entry, "country", "iso_code");
      loc.city = String(&r.entry, "city", "names", "en");
      lat = Number(&r.entry, "location", "latitude");
      lon = Number(&r.entry, "location", "longitude");
    }
    if (loc.country.size() != 2) continue;
    for (char& c : loc.country) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (lat && lon && std::abs(*lat) <= 90 && std::abs(*lon) <= 180) {
      loc.latitude = *lat;
      loc.longitude = *lon;
      loc.has_coordinates = true;
    }
    return loc;
  }
  return std::nullopt;
}

std::string GeoIp::Describe() const {
  std::string out;
  for (const auto& db : dbs_) {
    if (!out.empty()) out += ", ";
    char day[16] = "?";
    std::time_t built = static_cast<std::time_t>(db->mmdb.metadata.build_epoch);
    std::tm tm{};
    if (gmtime_r(&built, &tm)) std::strftime(day, sizeof day, "%Y-%m-%d", &tm);
    out += db->path + " (" +
           (db->mmdb.metadata.database_type ? db->mmdb.metadata.database_type : "?") + ", built " +
           day + ")";
  }
  return out;
}

double GreatCircleKm(double lat1, double lon1, double lat2, double lon2) {
  constexpr double kRad = M_PI / 180, kEarthKm = 6371.0088;
  double dlat = (lat2 - lat1) * kRad, dlon = (lon2 - lon1) * kRad;
  double a = std::sin(dlat / 2) * std::sin(dlat / 2) + std::cos(lat1 * kRad) *
                                                           std::cos(lat2 * kRad) *
                                                           std::sin(dlon / 2) * std::sin(dlon / 2);
  return 2 * kEarthKm * std::asin(std::sqrt(std::clamp(a, 0.0, 1.0)));
}

}  // namespace boing::detect
