// IP geolocation from MaxMind DB (.mmdb) files through libmaxminddb, for the geographic detectors.
//
// The files are memory-mapped (MMDB_MODE_MMAP) and opened once; lookups only read them, so one
// GeoIp can be shared by any number of threads. Both record layouts are read: the flat one of the
// ip-location-db packages (country_code, city, latitude, longitude; DB-IP City Lite, which the
// set-up script installs) and MaxMind's GeoLite2/GeoIP2 City (country.iso_code, city.names.en,
// location.latitude/longitude). Several files can be given (an IPv4 one and an IPv6 one): an
// address is looked up in each file that can hold it, in order, until one knows it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boing::detect {

struct GeoLocation {
  std::string country;  // ISO 3166-1 alpha-2, upper case
  std::string city;     // may be empty
  double latitude = 0, longitude = 0;
  bool has_coordinates = false;
};

class GeoIp {
 public:
  // Opens every file; null with `*error` naming the file when one cannot be opened.
  static std::shared_ptr<const GeoIp> Open(const std::vector<std::string>& paths,
                                           std::string* error);
  ~GeoIp();
  GeoIp(const GeoIp&) = delete;
  GeoIp& operator=(const GeoIp&) = delete;

  // The location of a textual IPv4/IPv6 address; nullopt when the address is malformed or no file
  // knows it (a record without a country counts as unknown).
  std::optional<GeoLocation> Lookup(std::string_view ip) const;
  // "path (type, built YYYY-MM-DD)" of each file, for logs and /api/detectors.
  std::string Describe() const;

 private:
  struct Db;
  GeoIp() = default;
  std::vector<std::unique_ptr<Db>> dbs_;
};

// Great-circle distance in kilometres (haversine, mean Earth radius 6371.0088 km).
double GreatCircleKm(double lat1, double lon1, double lat2, double lon2);

}  // namespace boing::detect
