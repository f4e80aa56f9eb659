// Tokenizing SQLi and XSS detectors. A value is read the way a database or a browser would read it
// after being spliced into a query or a page — as-is, and as if it started inside a quoted string
// or attribute — and the token sequence is judged by a few structural rules: a string that closes
// early and is followed by a boolean, comparison, comment, stacked query or UNION; a numeric value
// followed by the same; a tag or attribute that runs script.
#include <array>
#include <cstring>
#include <string_view>

#include "boing/detect/content.h"

namespace boing::detect {
namespace {

// ---------------------------------------------------------------------------------------------
// SQL

enum class T : uint8_t {
  kString,
  kNumber,
  kKeyword,
  kFunction,
  kWord,
  kLogic,     // and or xor && ||
  kCompare,   // = < > != <> <= >= like rlike regexp is in between sounds
  kOperator,  // other operators
  kOpen,
  kClose,
  kComma,
  kSemicolon,
  kComment,  // unterminated block comment, or a line comment (runs to the end)
  kVariable,
  kDot,
};

struct Tok {
  T type;
  std::string_view text;
  bool closed = true;  // strings: the closing quote was seen
};

bool IsWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}

bool In(std::string_view w, std::initializer_list<std::string_view> set) {
  for (auto s : set)
    if (w == s) return true;
  return false;
}

const std::initializer_list<std::string_view> kSqlKeywords = {
    "select",  "union",    "insert",  "update",   "delete",   "drop",  "from",     "where",
    "having",  "group",    "order",   "by",       "limit",    "into",  "values",   "exec",
    "execute", "declare",  "waitfor", "delay",    "shutdown", "all",   "distinct", "case",
    "when",    "then",     "else",    "end",      "null",     "true",  "false",    "procedure",
    "outfile", "dumpfile", "table",   "database", "create",   "alter", "truncate", "set",
    "top",     "offset",   "not",     "exists",   "join",     "as",    "collate",  "escape"};

const std::initializer_list<std::string_view> kStrongFunctions = {
    "sleep",     "benchmark",  "pg_sleep",         "extractvalue", "updatexml",
    "load_file", "make_set",   "regexp_substring", "randomblob",   "group_concat",
    "concat_ws", "name_const", "gtid_subset",      "json_keys",    "utl_inaddr.get_host_address"};

// Tokenizes `s` (lower case). `quote` != 0 starts inside a string delimited by it.
int SqlTokens(std::string_view s, char quote, std::array<Tok, 16>& out) {
  int n = 0;
  size_t i = 0;
  auto push = [&](T t, size_t from, size_t to, bool closed = true) {
    if (n < static_cast<int>(out.size()))
      out[static_cast<size_t>(n++)] = {t, s.substr(from, to - from), closed};
  };
  auto read_string = [&](char q, size_t from) {
    size_t j = from;
    while (j < s.size()) {
      if (s[j] == '\\' && j + 1 < s.size()) {
        j += 2;
        continue;
      }
      if (s[j] == q) {
        if (j + 1 < s.size() && s[j + 1] == q) {  // doubled quote
          j += 2;
          continue;
        }
        push(T::kString, from, j, true);
        return j + 1;
      }
      ++j;
    }
    push(T::kString, from, s.size(), false);
    return s.size();
  };
  if (quote) i = read_string(quote, 0);
  while (i < s.size() && n < static_cast<int>(out.size())) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
        static_cast<unsigned char>(c) == 0xA0) {
      ++i;
    } else if (c == '\'' || c == '"' || c == '`') {
      i = read_string(c, i + 1);
    } else if (c == '#' || (c == '-' && i + 1 < s.size() && s[i + 1] == '-')) {
      push(T::kComment, i, s.size());
      break;
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      size_t end = s.find("*/", i + 2);
      if (i + 2 < s.size() && s[i + 2] == '!') {  // MySQL executable comment: its body is code
        i += 3;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        continue;
      }
      if (end == std::string_view::npos) {
        push(T::kComment, i, s.size());
        break;
      }
      i = end + 2;  // a closed comment reads as whitespace
    } else if (c == '*' && i + 1 < s.size() && s[i + 1] == '/') {
      i += 2;  // the end of a MySQL executable comment
    } else if (c >= '0' && c <= '9') {
      size_t j = i;
      if (c == '0' && j + 1 < s.size() && (s[j + 1] == 'x' || s[j + 1] == 'b')) j += 2;
      while (j < s.size() && (IsWordChar(s[j]) || s[j] == '.')) ++j;
      push(T::kNumber, i, j);
      i = j;
    } else if (c == '@') {
      size_t j = i + 1;
      if (j < s.size() && s[j] == '@') ++j;
      while (j < s.size() && (IsWordChar(s[j]) || s[j] == '.')) ++j;
      push(T::kVariable, i, j);
      i = j;
    } else if (IsWordChar(c)) {
      size_t j = i;
      while (j < s.size() &&
             (IsWordChar(s[j]) || (s[j] == '.' && j + 1 < s.size() && IsWordChar(s[j + 1])))) {
        ++j;
      }
      std::string_view w = s.substr(i, j - i);
      size_t k = j;
      while (k < s.size() && s[k] == ' ') ++k;
      if (In(w, {"and", "or", "xor"})) {
        push(T::kLogic, i, j);
      } else if (In(w,
                    {"like", "rlike", "regexp", "is", "in", "between", "sounds", "div", "mod"})) {
        push(T::kCompare, i, j);
      } else if (k < s.size() && s[k] == '(') {
        push(T::kFunction, i, j);
      } else if (In(w, kSqlKeywords)) {
        push(T::kKeyword, i, j);
      } else {
        push(T::kWord, i, j);
      }
      i = j;
    } else if ((c == '|' || c == '&') && i + 1 < s.size() && s[i + 1] == c) {
      push(T::kLogic, i, i + 2);
      i += 2;
    } else if (c == '=' || c == '<' || c == '>' ||
               (c == '!' && i + 1 < s.size() && s[i + 1] == '=')) {
      size_t j = i + 1;
      while (j < s.size() && (s[j] == '=' || s[j] == '>' || s[j] == '<')) ++j;
      push(T::kCompare, i, j);
      i = j;
    } else if (c == '(') {
      push(T::kOpen, i, i + 1);
      ++i;
    } else if (c == ')') {
      push(T::kClose, i, i + 1);
      ++i;
    } else if (c == ',') {
      push(T::kComma, i, i + 1);
      ++i;
    } else if (c == ';') {
      push(T::kSemicolon, i, i + 1);
      ++i;
    } else if (c == '.') {
      push(T::kDot, i, i + 1);
      ++i;
    } else {
      push(T::kOperator, i, i + 1);
      ++i;
    }
  }
  return n;
}

bool IsOperand(const Tok& t) {
  return t.type == T::kNumber || t.type == T::kString || t.type == T::kFunction ||
         t.type == T::kVariable || t.type == T::kOpen ||
         (t.type == T::kKeyword &&
          In(t.text, {"null", "true", "false", "not", "exists", "select", "case"}));
}

const std::initializer_list<std::string_view> kStackedStart = {
    "select", "insert",   "update",   "delete",  "drop", "exec",  "execute", "declare", "create",
    "alter",  "truncate", "shutdown", "waitfor", "set",  "grant", "union",   "if",      "iif"};

// The tail after a break point reads as SQL: an operand, comparison, function, comment...
bool SqlTail(const std::array<Tok, 16>& t, int from, int n) {
  for (int k = from; k < n && k < from + 6; ++k) {
    const Tok& x = t[static_cast<size_t>(k)];
    if (IsOperand(x) || x.type == T::kCompare || x.type == T::kComment) return true;
  }
  return false;
}

const char* JudgeAfterBreak(const std::array<Tok, 16>& t, int i, int n) {
  while (i < n && t[static_cast<size_t>(i)].type == T::kClose) ++i;
  if (i >= n) return nullptr;
  const Tok& x = t[static_cast<size_t>(i)];
  const Tok* y = i + 1 < n ? &t[static_cast<size_t>(i + 1)] : nullptr;
  switch (x.type) {
    case T::kComment:
      return "sqli:break_comment";
    case T::kLogic:
      if (SqlTail(t, i + 1, n)) return "sqli:break_boolean";
      return nullptr;
    case T::kCompare:
      if (y && (IsOperand(*y) || y->type == T::kWord)) return "sqli:break_compare";
      return nullptr;
    case T::kSemicolon:
      if (y && (y->type == T::kKeyword || y->type == T::kFunction || y->type == T::kComment) &&
          (y->type == T::kComment || In(y->text, kStackedStart))) {
        return "sqli:stacked";
      }
      return nullptr;
    case T::kKeyword:
      if (x.text == "union" && y &&
          (y->text == "select" || y->text == "all" || y->text == "distinct" ||
           y->type == T::kOpen)) {
        return "sqli:break_union";
      }
      if ((x.text == "order" || x.text == "group") && y && y->text == "by")
        return "sqli:break_order";
      if (In(x.text, {"having", "procedure", "waitfor", "into", "limit"}) && y &&
          (IsOperand(*y) || y->type == T::kWord || y->type == T::kKeyword)) {
        return "sqli:break_keyword";
      }
      return nullptr;
    default:
      return nullptr;
  }
}

const char* JudgeSql(std::string_view v, char quote) {
  std::array<Tok, 16> t;
  int n = SqlTokens(v, quote, t);
  if (n == 0) return nullptr;
  // Anywhere: UNION SELECT, or a time/error-based function.
  for (int k = 0; k < n; ++k) {
    const Tok& x = t[static_cast<size_t>(k)];
    if (x.type == T::kKeyword && x.text == "union" && k + 1 < n) {
      const Tok& y = t[static_cast<size_t>(k + 1)];
      if (y.text == "select" ||
          ((y.text == "all" || y.text == "distinct" || y.type == T::kOpen) && k + 2 < n &&
           (t[static_cast<size_t>(k + 2)].text == "select" ||
            t[static_cast<size_t>(k + 2)].type == T::kOpen))) {
        return "sqli:union_select";
      }
    }
    if (x.type == T::kFunction && In(x.text, kStrongFunctions)) return "sqli:time_function";
  }
  if (quote) {
    if (!t[0].closed) return nullptr;  // never leaves the string: harmless in this context
    return JudgeAfterBreak(t, 1, n);
  }
  // As-is (numeric context): a number, optionally negated, then a break.
  int i = 0;
  if (t[0].type == T::kOperator && t[0].text == "-" && n > 1) i = 1;
  if (t[static_cast<size_t>(i)].type != T::kNumber) return nullptr;
  int j = i + 1;
  while (j < n && t[static_cast<size_t>(j)].type == T::kClose) ++j;
  if (j >= n) return nullptr;
  const Tok& x = t[static_cast<size_t>(j)];
  if (x.type == T::kComment && j > i + 1) return "sqli:numeric_comment";  // "1)--"
  if (x.type == T::kLogic) {
    // "1 or 1=1", "1 and sleep(5)": the tail must compare or call, not just continue prose.
    for (int k = j + 1; k < n && k < j + 7; ++k) {
      const Tok& y = t[static_cast<size_t>(k)];
      if (y.type == T::kCompare || y.type == T::kFunction ||
          (y.type == T::kKeyword && In(y.text, {"select", "exists", "true", "false", "null"}))) {
        return "sqli:numeric_boolean";
      }
    }
    return nullptr;
  }
  if (x.type == T::kSemicolon && j + 1 < n &&
      In(t[static_cast<size_t>(j + 1)].text, kStackedStart)) {
    return "sqli:stacked";
  }
  if (x.type == T::kKeyword &&
      (x.text == "union" || ((x.text == "order" || x.text == "group") && j + 1 < n &&
                             t[static_cast<size_t>(j + 1)].text == "by"))) {
    return "sqli:numeric_keyword";
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// HTML

bool IsAlpha(char c) { return c >= 'a' && c <= 'z'; }
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == '/';
}

const std::initializer_list<std::string_view> kDangerousTags = {
    "script", "iframe",   "frame",   "frameset", "object",  "embed",   "applet",
    "meta",   "base",     "link",    "svg",      "math",    "style",   "xml",
    "xss",    "template", "isindex", "import",   "bgsound", "layer",   "ilayer",
    "keygen", "portal",   "animate", "set",      "handler", "listener"};

const std::initializer_list<std::string_view> kUrlAttributes = {
    "src",        "href",   "action",   "formaction", "data",   "background", "lowsrc", "dynsrc",
    "xlink:href", "poster", "codebase", "srcdoc",     "values", "to",         "from",   "by"};

bool ScriptUrl(std::string_view v) {
  size_t i = 0;
  while (i < v.size() && (static_cast<unsigned char>(v[i]) <= ' ')) ++i;
  v.remove_prefix(i);
  // Browsers ignore whitespace and control characters inside the scheme.
  std::string scheme;
  for (char c : v) {
    if (c == ':') break;
    if (static_cast<unsigned char>(c) <= ' ') continue;
    scheme += c;
    if (scheme.size() > 16) return false;
  }
  if (scheme == "javascript" || scheme == "vbscript" || scheme == "livescript") return true;
  return scheme == "data" &&
         (v.find("text/html") != std::string_view::npos || v.find("svg") != std::string_view::npos);
}

// Parses attributes from `i` until '>' or the end; returns the rule that fired, if any.
const char* JudgeAttributes(std::string_view s, size_t i, bool in_tag, bool strict_handlers) {
  while (i < s.size()) {
    while (i < s.size() && (IsSpace(s[i]) || s[i] == '"' || s[i] == '\'')) ++i;
    if (i >= s.size() || s[i] == '>') return nullptr;
    size_t a = i;
    while (i < s.size() && !IsSpace(s[i]) && s[i] != '=' && s[i] != '>') ++i;
    std::string_view name = s.substr(a, i - a);
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
    std::string_view value;
    bool has_value = i < s.size() && s[i] == '=';
    if (has_value) {
      ++i;
      while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
      if (i < s.size() && (s[i] == '"' || s[i] == '\'' || s[i] == '`')) {
        char q = s[i++];
        size_t e = s.find(q, i);
        if (e == std::string_view::npos) e = s.size();
        value = s.substr(i, e - i);
        i = e + (e < s.size() ? 1 : 0);
      } else {
        size_t b = i;
        while (i < s.size() && !IsSpace(s[i]) && s[i] != '>') ++i;
        value = s.substr(b, i - b);
      }
    }
    if (name.size() > 4 && name.substr(0, 2) == "on" && IsAlpha(name[2]) && has_value) {
      bool all_alpha = true;
      for (char c : name) all_alpha &= IsAlpha(c);
      // Outside a tag (an attribute break), only words that really are handlers count.
      if (all_alpha &&
          (in_tag || !strict_handlers ||
           In(name, {"onerror",          "onload",        "onmouseover", "onfocus",
                     "onclick",          "onmouseenter",  "onmousemove", "onpointerover",
                     "onanimationstart", "onbegin",       "ontoggle",    "onblur",
                     "onchange",         "oninput",       "onkeydown",   "onkeyup",
                     "onkeypress",       "onsubmit",      "onstart",     "onpageshow",
                     "onscroll",         "onwheel",       "onresize",    "onunload",
                     "onbeforeunload",   "onmouseout",    "onmousedown", "onmouseup",
                     "ondblclick",       "oncontextmenu", "onfocusin",   "ontransitionend",
                     "onhashchange",     "onmessage",     "onpopstate",  "onplay",
                     "onended"}))) {
        return "xss:event_handler_attribute";
      }
    }
    if (has_value && In(name, kUrlAttributes) && ScriptUrl(value))
      return "xss:script_url_attribute";
    if (has_value && name == "style" &&
        (value.find("expression(") != std::string_view::npos ||
         value.find("javascript:") != std::string_view::npos ||
         value.find("-moz-binding") != std::string_view::npos)) {
      return "xss:style_script";
    }
    if (!has_value && i < s.size() && s[i] != '>' && i == a) ++i;  // always advance
  }
  return nullptr;
}

}  // namespace

const char* SqliTokenizer(std::string_view value) {
  if (value.empty()) return nullptr;
  if (const char* r = JudgeSql(value, 0)) return r;
  if (value.find('\'') != std::string_view::npos) {
    if (const char* r = JudgeSql(value, '\'')) return r;
  }
  if (value.find('"') != std::string_view::npos) {
    if (const char* r = JudgeSql(value, '"')) return r;
  }
  return nullptr;
}

const char* XssTokenizer(std::string_view s) {
  if (s.empty()) return nullptr;
  // Tags anywhere in the value.
  for (size_t i = s.find('<'); i != std::string_view::npos; i = s.find('<', i + 1)) {
    size_t j = i + 1;
    while (j < s.size() && (s[j] == ' ' || s[j] == '/' || s[j] == '\t')) ++j;
    if (j >= s.size() || !IsAlpha(s[j])) continue;
    size_t k = j;
    while (k < s.size() &&
           (IsAlpha(s[k]) || (s[k] >= '0' && s[k] <= '9') || s[k] == ':' || s[k] == '-')) {
      ++k;
    }
    std::string_view tag = s.substr(j, k - j);
    if (In(tag, kDangerousTags)) return "xss:dangerous_tag_token";
    if (k < s.size() && !IsSpace(s[k]) && s[k] != '>') continue;  // "<ab+c" is not a tag
    if (const char* r = JudgeAttributes(s, k, true, false)) return r;
  }
  // Attribute break: the value ends an attribute value and starts new attributes.
  for (char q : {'"', '\''}) {
    size_t p = s.find(q);
    if (p == std::string_view::npos) continue;
    if (const char* r = JudgeAttributes(s, p + 1, false, true)) return r;
  }
  // Unquoted attribute value followed by a handler, or a URL attribute that is script.
  if (size_t p = s.find_first_of(" \t\n/"); p != std::string_view::npos) {
    if (const char* r = JudgeAttributes(s, p + 1, false, true)) return r;
  }
  if (ScriptUrl(s)) return "xss:script_url_value";
  return nullptr;
}

}  // namespace boing::detect
