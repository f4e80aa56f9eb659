// Content detectors: the attack classes found in request values, and the two engines that find
// them — a Hyperscan multi-pattern scan over the normalised text, and tokenizing SQL and HTML
// detectors (in the style of libinjection: the value is tokenized as it would be read when spliced
// into a query or a page, in each quoting context, and the token sequence is judged).
//
// Inputs are values already passed through Normalize() (lower case, decoded).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace boing::detect {

enum class AttackClass { kSqli, kXss, kPathTraversal, kCmdi, kLdapi, kNosqli };
constexpr int kAttackClasses = 6;
const char* AttackClassId(AttackClass c);  // the detector id: "sqli", "xss", "path_traversal", ...

struct ContentMatch {
  AttackClass cls;
  const char* rule;  // the signature or tokenizer rule that matched (static string)
  size_t end;        // offset in the scanned text just after the match
};

// The compiled signature set. Construction compiles the database once (it aborts with a message
// when a built-in pattern fails to compile: that is a programming error). Scan() is not
// thread-safe: each thread owns its own SignatureSet (scratch space is per object).
class SignatureSet {
 public:
  SignatureSet();
  ~SignatureSet();
  SignatureSet(const SignatureSet&) = delete;
  SignatureSet& operator=(const SignatureSet&) = delete;
  // Appends at most one match per signature.
  void Scan(std::string_view text, std::vector<ContentMatch>& out);
  size_t PatternCount() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Tokenizing detectors. Each returns the rule name that fired, or nullptr when the value reads as
// harmless in every context.
const char* SqliTokenizer(std::string_view value);
const char* XssTokenizer(std::string_view value);

}  // namespace boing::detect
