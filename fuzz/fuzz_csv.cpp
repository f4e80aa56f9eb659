// CSV export quoting (common/ csv.h). Property: a record read back by an RFC 4180 reader gives
// the fields written, except that a field starting with a formula character comes back with the
// neutralising quote in front — and no field read back ever starts with one.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "boing/csv.h"
#include "fuzz_util.h"

namespace {

// RFC 4180: fields separated by ',', records by CRLF, quoted fields double their quotes.
// Returns false on malformed input.
bool ReadRecord(std::string_view s, std::vector<std::string>& out) {
  size_t i = 0;
  for (;;) {
    std::string field;
    if (i < s.size() && s[i] == '"') {
      ++i;
      for (;;) {
        if (i >= s.size()) return false;
        if (s[i] == '"') {
          if (i + 1 < s.size() && s[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field += s[i++];
      }
    } else {
      while (i < s.size() && s[i] != ',' && s[i] != '\r' && s[i] != '\n') {
        if (s[i] == '"') return false;
        field += s[i++];
      }
    }
    out.push_back(std::move(field));
    if (i < s.size() && s[i] == ',') {
      ++i;
      continue;
    }
    return s.substr(i) == "\r\n";
  }
}

// A spreadsheet evaluates a cell starting with = + - @ TAB CR, except a negative number.
bool Dangerous(std::string_view v) {
  if (v.empty()) return false;
  if (v[0] == '-' && v.size() > 1 &&
      v.find_first_not_of("0123456789.", 1) == std::string_view::npos)
    return false;
  return v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@' || v[0] == '\t' || v[0] == '\r';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // Fields are the input split at '\x1f' (unit separator), so seeds stay readable.
  std::vector<std::string> fields;
  size_t start = 0;
  for (;;) {
    size_t p = text.find('\x1f', start);
    fields.emplace_back(text.substr(start, p == std::string_view::npos ? p : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  std::string out;
  boing::csv::AppendRecord(out, fields);
  std::vector<std::string> back;
  BOING_FUZZ_CHECK(ReadRecord(out, back));
  BOING_FUZZ_CHECK(back.size() == fields.size());
  for (size_t i = 0; i < fields.size(); ++i) {
    if (Dangerous(fields[i])) {
      BOING_FUZZ_CHECK(back[i] == "'" + fields[i]);
    } else {
      BOING_FUZZ_CHECK(back[i] == fields[i]);
    }
    BOING_FUZZ_CHECK(!Dangerous(back[i]));
  }
  return 0;
}
