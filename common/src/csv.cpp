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

bool Reader::Next(std::vector<std::string>& fields) {
  fields.clear();
  if (!error_.empty()) return false;
  record_line_ = line_;
  std::string field;
  size_t bytes = 0;
  bool quoted = false, after_quote = false, any = false;
  std::streambuf* buf = in_.rdbuf();
  for (;;) {
    int ch = buf ? buf->sbumpc() : std::char_traits<char>::eof();
    if (ch == std::char_traits<char>::eof()) {
      if (quoted) {
        error_ = "unterminated quoted field (opened on line " + std::to_string(record_line_) + ")";
        return false;
      }
      if (!any) return false;
      fields.push_back(std::move(field));
      return true;
    }
    any = true;
    char c = static_cast<char>(ch);
    if (++bytes > max_record_bytes_) {
      error_ = "record longer than " + std::to_string(max_record_bytes_) + " bytes";
      return false;
    }
    if (c == '\n') ++line_;
    if (quoted) {
      if (c == '"') {
        if (buf->sgetc() == '"') {
          buf->sbumpc();
          field += '"';
        } else {
          quoted = false;
          after_quote = true;
        }
      } else {
        field += c;
      }
      continue;
    }
    if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
      after_quote = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r') {
        if (buf->sgetc() != '\n') {
          error_ = "bare carriage return outside quotes";
          return false;
        }
        buf->sbumpc();
        ++line_;
      }
      fields.push_back(std::move(field));
      return true;
    } else if (after_quote) {
      error_ = std::string("unexpected character '") + c + "' after a closing quote";
      return false;
    } else if (c == '"' && field.empty()) {
      quoted = true;
    } else {
      field += c;
    }
  }
}

}  // namespace boing::csv
