#include "boing/csv.h"

namespace boing::csv {

void AppendField(std::string& out, std::string_view value) {
  bool formula = !value.empty() && (value[0] == '=' || value[0] == '+' || value[0] == '-' ||
                                    value[0] == '@' || value[0] == '\t' || value[0] == '\r');
  // Negative numbers are data, not formulas; keep them readable as numbers.
  if (formula && value[0] == '-' && value.size() > 1 &&
      value.find_first_not_of("0123456789.", 1) == std::string_view::npos) {
    formula = false;
  }
  bool quote = formula || value.find_first_of(",\"\r\n") != std::string_view::npos ||
               (!value.empty() && (value.front() == ' ' || value.back() == ' '));
  if (!quote) {
    out.append(value);
    return;
  }
  out.push_back('"');
  if (formula) out.push_back('\'');
  for (char c : value) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

void AppendRecord(std::string& out, const std::vector<std::string>& fields) {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) out.push_back(',');
    AppendField(out, fields[i]);
  }
  out.append("\r\n");
}

}  // namespace boing::csv
