// RFC 4180 CSV fields with spreadsheet formula-injection neutralised (OWASP "CSV Injection"): a
// value starting with = + - @ TAB or CR is prefixed with a single quote before quoting, so opening
// an export in a spreadsheet never evaluates attacker-supplied text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace boing::csv {

// Appends one field (quoted when it contains , " CR LF or leading/trailing space).
void AppendField(std::string& out, std::string_view value);
// Appends a record: fields joined by ',' and terminated by CRLF.
void AppendRecord(std::string& out, const std::vector<std::string>& fields);

}  // namespace boing::csv
