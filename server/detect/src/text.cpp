#include "boing/detect/text.h"

#include <cstring>

namespace boing::detect {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int HexVal(char c) {
  if (IsDigit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}
bool IsTokenChar(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < 36; ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !IsHex(s[i])) return false;
  }
  return true;
}

bool IsIdSegment(std::string_view s) {
  if (s.empty()) return false;
  bool all_digits = true, all_hex = true, all_token = true, any_digit = false;
  for (char c : s) {
    all_digits &= IsDigit(c);
    all_hex &= IsHex(c);
    all_token &= IsTokenChar(c);
    any_digit |= IsDigit(c);
  }
  if (all_digits) return true;
  if (IsUuid(s)) return true;
  if (all_hex && any_digit && s.size() >= 16) return true;
  return all_token && any_digit && s.size() >= 20;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Code points that stand for ASCII in attacks: full-width forms and a few look-alikes.
void AppendCodePoint(uint32_t cp, std::string& out) {
  if (cp >= 0xFF01 && cp <= 0xFF5E) {
    out += static_cast<char>(cp - 0xFF01 + 0x21);
  } else if (cp == 0x2215 || cp == 0x2044) {  // division slash, fraction slash
    out += '/';
  } else if (cp == 0x2216 || cp == 0xFE68) {  // set minus, small reverse solidus
    out += '\\';
  } else if (cp == 0x02BC || cp == 0x2018 || cp == 0x2019) {  // apostrophe look-alikes
    out += '\'';
  } else if (cp == 0x201C || cp == 0x201D) {
    out += '"';
  } else if (cp == 0x3008 || cp == 0x2039 || cp == 0xFE64) {
    out += '<';
  } else if (cp == 0x3009 || cp == 0x203A || cp == 0xFE65) {
    out += '>';
  } else {
    AppendUtf8(cp, out);
  }
}

// %XX, %uXXXX and (optionally) '+'.
void UrlDecode(std::string_view in, std::string& out, bool plus_is_space) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%' && i + 2 < in.size() && IsHex(in[i + 1]) && IsHex(in[i + 2])) {
      out += static_cast<char>(HexVal(in[i + 1]) * 16 + HexVal(in[i + 2]));
      i += 2;
    } else if (c == '%' && i + 5 < in.size() && (in[i + 1] == 'u' || in[i + 1] == 'U') &&
               IsHex(in[i + 2]) && IsHex(in[i + 3]) && IsHex(in[i + 4]) && IsHex(in[i + 5])) {
      uint32_t cp = static_cast<uint32_t>(HexVal(in[i + 2]) << 12 | HexVal(in[i + 3]) << 8 |
                                          HexVal(in[i + 4]) << 4 | HexVal(in[i + 5]));
      AppendCodePoint(cp, out);
      i += 5;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
}

struct NamedEntity {
  const char* name;
  const char* text;
};
constexpr NamedEntity kEntities[] = {
    {"lt", "<"},     {"gt", ">"},     {"quot", "\""},   {"apos", "'"},   {"amp", "&"},
    {"sol", "/"},    {"bsol", "\\"},  {"colon", ":"},   {"semi", ";"},   {"lpar", "("},
    {"rpar", ")"},   {"lsqb", "["},   {"rsqb", "]"},    {"lcub", "{"},   {"rcub", "}"},
    {"equals", "="}, {"tab", " "},    {"newline", " "}, {"nbsp", " "},   {"excl", "!"},
    {"num", "#"},    {"percnt", "%"}, {"plus", "+"},    {"comma", ","},  {"period", "."},
    {"ast", "*"},    {"grave", "`"},  {"vert", "|"},    {"dollar", "$"}, {"quest", "?"},
    {"commat", "@"}, {"lowbar", "_"}, {"hat", "^"},     {"verbar", "|"}, {"midast", "*"},
};

// HTML character references and backslash escapes; the semicolon of a reference is optional,
// as browsers accept it.
void EntityDecode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '&' && i + 2 < in.size()) {
      if (in[i + 1] == '#') {
        size_t j = i + 2;
        bool hex = j < in.size() && (in[j] == 'x' || in[j] == 'X');
        if (hex) ++j;
        uint32_t cp = 0;
        size_t start = j;
        while (j < in.size() && j - start < 8 && (hex ? IsHex(in[j]) : IsDigit(in[j]))) {
          cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(HexVal(in[j]));
          ++j;
        }
        if (j > start && cp > 0 && cp <= 0x10FFFF) {
          AppendCodePoint(cp, out);
          i = (j < in.size() && in[j] == ';') ? j : j - 1;
          continue;
        }
      } else {
        bool done = false;
        for (const auto& e : kEntities) {
          size_t n = std::strlen(e.name);
          if (in.size() - i - 1 >= n && in.compare(i + 1, n, e.name) == 0) {
            out += e.text;
            i += n;
            if (i + 1 < in.size() && in[i + 1] == ';') ++i;
            done = true;
            break;
          }
        }
        if (done) continue;
      }
    } else if (c == '\\' && i + 1 < in.size()) {
      char n = in[i + 1];
      if ((n == 'u' || n == 'U') && i + 5 < in.size() && IsHex(in[i + 2]) && IsHex(in[i + 3]) &&
          IsHex(in[i + 4]) && IsHex(in[i + 5])) {
        AppendCodePoint(static_cast<uint32_t>(HexVal(in[i + 2]) << 12 | HexVal(in[i + 3]) << 8 |
                                              HexVal(in[i + 4]) << 4 | HexVal(in[i + 5])),
                        out);
        i += 5;
        continue;
      }
      if ((n == 'x' || n == 'X') && i + 3 < in.size() && IsHex(in[i + 2]) && IsHex(in[i + 3])) {
        out += static_cast<char>(HexVal(in[i + 2]) * 16 + HexVal(in[i + 3]));
        i += 3;
        continue;
      }
    }
    out += c;
  }
}

// Folds over-long 2-byte UTF-8 (C0/C1 xx) and full-width forms to ASCII, control whitespace to a
// space, and lower-cases ASCII.
void FoldAndLower(std::string_view in, std::string& out) {
  out.resize(in.size());  // folding never lengthens the text
  char* w = out.data();
  for (size_t i = 0; i < in.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(in[i]);
    if (c >= 0xC0) {
      if ((c == 0xC0 || c == 0xC1) && i + 1 < in.size() &&
          (static_cast<unsigned char>(in[i + 1]) & 0xC0) == 0x80) {
        c = static_cast<unsigned char>(((c & 0x1F) << 6) |
                                       (static_cast<unsigned char>(in[i + 1]) & 0x3F));
        ++i;
      } else if (c == 0xEF && i + 2 < in.size()) {
        unsigned char b1 = static_cast<unsigned char>(in[i + 1]);
        unsigned char b2 = static_cast<unsigned char>(in[i + 2]);
        uint32_t cp = ((c & 0x0Fu) << 12) | ((b1 & 0x3Fu) << 6) | (b2 & 0x3Fu);
        if ((b1 & 0xC0) == 0x80 && (b2 & 0xC0) == 0x80 && cp >= 0xFF01 && cp <= 0xFF5E) {
          c = static_cast<unsigned char>(cp - 0xFF01 + 0x21);
          i += 2;
        }
      }
    }
    if (c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') c = ' ';
    if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c + 32);
    *w++ = static_cast<char>(c);
  }
  out.resize(static_cast<size_t>(w - out.data()));
}

}  // namespace

uint64_t Hash64(std::string_view s, uint64_t seed) {
  // Eight bytes per step (a multiply-rotate-multiply round per word, as in MurmurHash3), then
  // MurmurHash3's finaliser: keys are client addresses, identities and templates, 10-60 bytes.
  constexpr uint64_t k1 = 0x87c37b91114253d5ULL, k2 = 0x4cf5ad432745937fULL;
  uint64_t h = 0x9E3779B97F4A7C15ULL * (seed + 1) ^ s.size();
  const char* p = s.data();
  size_t n = s.size();
  auto round = [&](uint64_t w) {
    w *= k1;
    w = (w << 31) | (w >> 33);
    w *= k2;
    h ^= w;
    h = ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
  };
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    round(w);
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    round(w);
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

int TemplateOf(std::string_view endpoint, std::string& out, uint64_t* ids_hash) {
  constexpr size_t kMaxTemplate = 512;
  out.clear();
  if (auto q = endpoint.find_first_of("?#"); q != std::string_view::npos) {
    endpoint = endpoint.substr(0, q);
  }
  uint64_t h = 0;
  int folded = 0;
  size_t i = 0;
  while (i <= endpoint.size()) {
    size_t slash = endpoint.find('/', i);
    if (slash == std::string_view::npos) slash = endpoint.size();
    std::string_view seg = endpoint.substr(i, slash - i);
    if (IsIdSegment(seg)) {
      out += "{id}";
      h = Hash64(seg, h + 1);
      ++folded;
    } else {
      out.append(seg);
    }
    if (slash < endpoint.size()) out += '/';
    i = slash + 1;
    if (out.size() > kMaxTemplate) {
      out.resize(kMaxTemplate);
      break;
    }
  }
  if (out.empty()) out = "/";
  if (ids_hash) *ids_hash = h;
  return folded;
}

void Normalize(std::string_view in, std::string& out, bool plus_is_space) {
  // Most values hold nothing to decode: folding case and whitespace is then the whole job.
  bool decode = false;
  for (char ch : in) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == '%' || c == '&' || c == '\\' || (c == '+' && plus_is_space) || c >= 0x80) {
      decode = true;
      break;
    }
  }
  if (!decode) {
    FoldAndLower(in, out);
    return;
  }
  thread_local std::string a, b;
  a.assign(in);
  for (int round = 0; round < 4; ++round) {
    UrlDecode(a, b, plus_is_space && round == 0);
    EntityDecode(b, out);
    FoldAndLower(out, b);
    if (b == a) break;
    a.swap(b);
  }
  out.assign(a);
}

}  // namespace boing::detect
