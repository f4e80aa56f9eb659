// RFC 4180 CSV fields with spreadsheet formula-injection neutralised (OWASP "CSV Injection"): a
// value starting with = + - @ TAB or CR is prefixed with a single quote before quoting, so opening
// an export in a spreadsheet never evaluates attacker-supplied text.
#pragma once

#include <cstddef>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

namespace boing::csv {

// Appends one field (quoted when it contains , " CR LF or leading/trailing space).
void AppendField(std::string& out, std::string_view value);
// Appends a record: fields joined by ',' and terminated by CRLF.
void AppendRecord(std::string& out, const std::vector<std::string>& fields);

// Reads RFC 4180 records one at a time: quoted fields may hold commas, doubled quotes and line
// breaks; records end with LF or CRLF. A record longer than `max_record_bytes` is an error (so a
// file without line breaks cannot exhaust memory).
class Reader {
 public:
  explicit Reader(std::istream& in, size_t max_record_bytes = 1 << 20)
      : in_(in), max_record_bytes_(max_record_bytes) {}
  // The next record into `fields`. False at the end of the input, or on an error (then error()
  // says what, and line() is the line it was found on).
  bool Next(std::vector<std::string>& fields);
  // The 1-based line on which the last record returned (or the failing one) began.
  size_t line() const { return record_line_; }
  const std::string& error() const { return error_; }

 private:
  std::istream& in_;
  size_t max_record_bytes_;
  size_t line_ = 1, record_line_ = 0;
  std::string error_;
};

}  // namespace boing::csv
