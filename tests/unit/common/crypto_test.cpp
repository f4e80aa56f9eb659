#include "boing/crypto.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>

namespace boing::crypto {
namespace {

// github.com/fernet/spec generate.json / verify.json.
constexpr char kSecret[] = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
constexpr char kToken[] =
    "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4"
    "IwqDA==";
constexpr uint64_t kNow = 499162800;  // 1985-10-26T01:20:00-07:00

std::string Iv0to15() {
  std::string iv;
  for (int i = 0; i < 16; ++i) iv += static_cast<char>(i);
  return iv;
}

TEST(Fernet, SpecGenerateVector) {
  auto f = Fernet::FromKey(kSecret);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->EncryptAt("hello", kNow, Iv0to15()), kToken);
}

TEST(Fernet, SpecVerifyVector) {
  auto f = Fernet::FromKey(kSecret);
  ASSERT_TRUE(f);
  auto p = f->Decrypt(kToken, 60, kNow + 1);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, "hello");
}

TEST(Fernet, SpecInvalidVectorsAreRejected) {
  auto f = Fernet::FromKey(kSecret);
  ASSERT_TRUE(f);
  struct Case {
    const char* desc;
    const char* token;
    uint64_t now;
  };
  const Case cases[] = {
      {"incorrect mac",
       "rn9hs9yS0GVWjk4hH822VIwQUWz-_"
       "WZWCLzsD7SgV2IAAAAAHcCesAABAgMEBQYHCAkKCwwNDg8tNtXKRlVimf3hMAhj"
       "OASy",
       kNow + 1},
      {"too short",
       "91GVdgz7jmWR6vJiViEA4u-LhVMhCSr87INSeFwwkYAAAAAAHcCesAABAgMEBQYHCAkKCw==", kNow + 1},
      {"invalid base64",
       "%%%%%%%%%%%j-"
       "ztUarjDIfllJBmLiBMjfcmZesHVIhcAAAAAHcCesAABAgMEBQYHCAkKCwwNDg8tNtXKRlVimf3hMAhj"
       "OASy",
       kNow + 1},
      {"payload size not multiple of block size",
       "r-pDJRzyfnW4rYfh-"
       "gZek3qA3lnFG8fGaf0qgmZlPL8AAAAAHcCesAABAgMEBQYHCAkKCwwNDg8tNtXKRlVimf3hMAhj"
       "OAQ=",
       kNow + 1},
      {"payload padding error",
       "ApoqRxzlU8Z9-mPSV6ufXeIgKugRjI_-"
       "ugnnqqoCTjQAAAAAHcCesAABAgMEBQYHCAkKCwwNDg91rx5fbHkRnpZBxpOu"
       "EAjd",
       kNow + 1},
      {"far-future TS",
       "M0oOEQn9ZTWz212mKeX0qRyi7-"
       "wYxJFfsmDMhRazEeAAAAAAVigfvAABAgMEBQYHCAkKCwwNDg8tNtXKRlVimf3hMAhj"
       "OASy",
       kNow + 1},
      {"expired TTL",
       "2woUxqnnpRAj-"
       "ztUarjDIfllJBmLiBMjfcmZesHVIhcAAAAAHcCesAABAgMEBQYHCAkKCwwNDg8tNtXKRlVimf3hMAhj"
       "OASy",
       kNow + 61},
      {"incorrect IV",
       "fe5sCHPyF13H837yvtc65xAlWfXXP3fEUX_jMiB74EwAAAAAHcCesHV0d3ZxcHNyfXx_"
       "fnl4e3otNtXKRlVimf3hMAhj"
       "OASy",
       kNow + 1},
  };
  for (const auto& c : cases) EXPECT_FALSE(f->Decrypt(c.token, 60, c.now)) << c.desc;
}

TEST(Fernet, RejectsTamperingSkewAndExpiry) {
  auto f = Fernet::FromKey(kSecret);
  std::string t = f->EncryptAt("secret value", kNow, Iv0to15());
  ASSERT_TRUE(f->Decrypt(t, 0, kNow));
  auto raw = *Base64Decode(t);
  for (size_t i : {size_t{0}, size_t{5}, size_t{20}, size_t{40}, raw.size() - 1}) {
    std::string bad = raw;
    bad[i] ^= 1;
    EXPECT_FALSE(f->Decrypt(Base64Url(bad), 0, kNow)) << "byte " << i;
  }
  EXPECT_FALSE(f->Decrypt(t, 0, kNow - 61)) << "token from the future";
  EXPECT_TRUE(f->Decrypt(t, 0, kNow - 59));
  EXPECT_FALSE(f->Decrypt(t, 10, kNow + 11)) << "expired";
  auto other = Fernet::FromKey(Fernet::GenerateKey());
  EXPECT_FALSE(other->Decrypt(t, 0, kNow)) << "wrong key";
}

TEST(Fernet, RoundTripAndKeyValidation) {
  auto f = Fernet::FromKey(Fernet::GenerateKey());
  ASSERT_TRUE(f);
  for (std::string s :
       {std::string(), std::string("x"), std::string(16, 'a'), std::string(1000, '\0')}) {
    auto p = f->Decrypt(f->Encrypt(s));
    ASSERT_TRUE(p);
    EXPECT_EQ(*p, s);
  }
  std::string err;
  EXPECT_FALSE(Fernet::FromKey("short", &err));
  EXPECT_FALSE(err.empty());
  EXPECT_FALSE(Fernet::FromKey(std::string(43, 'A') + "!"));
  EXPECT_TRUE(Fernet::FromRaw32("0123456789abcdef0123456789abcdef"));
  EXPECT_FALSE(Fernet::FromRaw32("0123456789abcdef"));
}

TEST(MultiFernet, DecryptsOldKeysAndRotates) {
  auto old_key = *Fernet::FromKey(Fernet::GenerateKey());
  auto new_key = *Fernet::FromKey(Fernet::GenerateKey());
  std::string t = old_key.Encrypt("s3");
  MultiFernet mf({new_key, old_key});
  ASSERT_EQ(mf.Decrypt(t), "s3");
  auto rotated = mf.Rotate(t);
  ASSERT_TRUE(rotated);
  EXPECT_EQ(new_key.Decrypt(*rotated), "s3");
  EXPECT_FALSE(old_key.Decrypt(*rotated));
  EXPECT_FALSE(MultiFernet({new_key}).Decrypt(t));
}

// Interoperability with Python's `cryptography` (Debian python3-cryptography) both ways.
std::string RunCommand(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 512> buf;
  while (fgets(buf.data(), buf.size(), p)) out += buf.data();
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

TEST(Fernet, InteroperatesWithPythonCryptography) {
  if (RunCommand("/usr/bin/python3 -c 'import cryptography; print(1)' 2>/dev/null") != "1") {
    if (std::getenv("CI")) FAIL() << "python3-cryptography is required under CI";
    GTEST_SKIP() << "python3-cryptography not installed";
  }
  std::string key = Fernet::GenerateKey();
  auto f = *Fernet::FromKey(key);
  std::string token = f.Encrypt("from c++");
  std::string py = RunCommand(
      "/usr/bin/python3 -c \"from cryptography.fernet import Fernet; "
      "print(Fernet(b'" +
      key + "').decrypt(b'" + token + "').decode())\"");
  EXPECT_EQ(py, "from c++");
  std::string py_token = RunCommand(
      "/usr/bin/python3 -c \"from cryptography.fernet import Fernet; "
      "print(Fernet(b'" +
      key + "').encrypt(b'from python').decode())\"");
  EXPECT_EQ(f.Decrypt(py_token), "from python");
}

TEST(Hashes, KnownAnswers) {
  EXPECT_EQ(Hex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // RFC 4231 test case 2.
  EXPECT_EQ(Hex(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_NE(RandomToken(), RandomToken());
}

TEST(Encodings, RoundTripAndRejectGarbage) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    EXPECT_EQ(Base64Decode(Base64(s)), s);
    EXPECT_EQ(Base64Decode(Base64UrlNoPad(s)), s);
  }
  EXPECT_EQ(Base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64("fo"), "Zm8=");
  EXPECT_EQ(Base64Url("\xfb\xff"), "-_8=");
  EXPECT_FALSE(Base64Decode("Zm9v!"));
  EXPECT_FALSE(Base64Decode("Z"));
  EXPECT_FALSE(Base64Decode("Zm8==="));
  EXPECT_FALSE(Base64Decode("Zm9=v"));
  EXPECT_EQ(Unhex("00ff10"), std::string("\x00\xff\x10", 3));
  EXPECT_FALSE(Unhex("0g"));
  EXPECT_FALSE(Unhex("abc"));
}

class JwtTest : public ::testing::Test {
 protected:
  static constexpr char kKey[] = "test-secret-that-is-long-enough-123";
  JwtClaims Claims() {
    JwtClaims c;
    c.sub = "42";
    c.role = "admin";
    c.jti = "j1";
    c.iss = "boing";
    c.aud = "boing-dashboard";
    c.iat = c.nbf = 1000;
    c.exp = 2000;
    return c;
  }
  std::optional<JwtClaims> Verify(const std::string& t, int64_t now = 1500) {
    return JwtVerify(t, kKey, "boing", "boing-dashboard", now, &error_, 0);
  }
  static std::string Part(const std::string& json) { return Base64UrlNoPad(json); }
  std::string error_;
};

TEST_F(JwtTest, RoundTrip) {
  auto c = Verify(JwtSign(Claims(), kKey));
  ASSERT_TRUE(c) << error_;
  EXPECT_EQ(c->sub, "42");
  EXPECT_EQ(c->role, "admin");
  EXPECT_EQ(c->jti, "j1");
}

TEST_F(JwtTest, RejectsAlgNone) {
  std::string t = JwtSign(Claims(), kKey);
  std::string payload = t.substr(t.find('.') + 1, t.rfind('.') - t.find('.') - 1);
  EXPECT_FALSE(Verify(Part(R"({"alg":"none","typ":"JWT"})") + "." + payload + "."));
  EXPECT_FALSE(
      Verify(Part(R"({"alg":"none"})") + "." + payload + "." + t.substr(t.rfind('.') + 1)));
  EXPECT_FALSE(Verify(Part(R"({"alg":"None"})") + "." + payload + "."));
  EXPECT_EQ(error_, "algorithm not allowed");
}

TEST_F(JwtTest, RejectsOtherAlgorithmsIncludingRsConfusion) {
  std::string t = JwtSign(Claims(), kKey);
  std::string payload = t.substr(t.find('.') + 1, t.rfind('.') - t.find('.') - 1);
  for (const char* h : {R"({"alg":"HS512","typ":"JWT"})", R"({"alg":"RS256","typ":"JWT"})",
                        R"({"alg":"hs256","typ":"JWT"})"}) {
    std::string input = Part(h) + "." + payload;
    // Correctly HMAC-signed with the secret (what an HS/RS confusion attack produces).
    std::string forged = input + "." + Base64UrlNoPad(HmacSha256(kKey, input));
    EXPECT_FALSE(Verify(forged)) << h;
  }
}

TEST_F(JwtTest, RejectsTampering) {
  std::string t = JwtSign(Claims(), kKey);
  auto c = Claims();
  c.role = "user";
  std::string other = JwtSign(c, kKey);
  // Payload of one token with the signature of another.
  std::string spliced = t.substr(0, t.find('.')) +
                        other.substr(other.find('.'), other.rfind('.') - other.find('.')) +
                        t.substr(t.rfind('.'));
  EXPECT_FALSE(Verify(spliced));
  std::string bad_sig = t;
  bad_sig.back() = bad_sig.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(Verify(bad_sig));
  EXPECT_FALSE(JwtVerify(t, "another-secret", "boing", "boing-dashboard", 1500, &error_, 0));
  EXPECT_FALSE(Verify("garbage"));
  EXPECT_FALSE(Verify("a.b.c"));
  EXPECT_FALSE(Verify(t + ".extra"));
}

TEST_F(JwtTest, ChecksTimesIssuerAndAudience) {
  EXPECT_FALSE(Verify(JwtSign(Claims(), kKey), 2001));
  EXPECT_EQ(error_, "expired");
  EXPECT_FALSE(Verify(JwtSign(Claims(), kKey), 999));
  EXPECT_EQ(error_, "not yet valid");
  auto c = Claims();
  c.aud = "someone-else";
  EXPECT_FALSE(Verify(JwtSign(c, kKey)));
  EXPECT_EQ(error_, "wrong audience");
  c = Claims();
  c.iss = "evil";
  EXPECT_FALSE(Verify(JwtSign(c, kKey)));
  EXPECT_EQ(error_, "wrong issuer");
  // No exp at all.
  std::string input = Part(R"({"alg":"HS256","typ":"JWT"})") + "." +
                      Part(R"({"sub":"1","iss":"boing","aud":"boing-dashboard"})");
  EXPECT_FALSE(Verify(input + "." + Base64UrlNoPad(HmacSha256(kKey, input))));
  EXPECT_EQ(error_, "missing exp");
  // Audience given as an array containing ours is accepted.
  input = Part(R"({"alg":"HS256","typ":"JWT"})") + "." +
          Part(R"({"sub":"1","iss":"boing","aud":["x","boing-dashboard"],"exp":2000})");
  EXPECT_TRUE(Verify(input + "." + Base64UrlNoPad(HmacSha256(kKey, input))));
}

TEST_F(JwtTest, UnverifiedSubject) {
  EXPECT_EQ(JwtUnverifiedSubject(JwtSign(Claims(), "any")), "42");
  EXPECT_FALSE(JwtUnverifiedSubject("not-a-jwt"));
  EXPECT_FALSE(JwtUnverifiedSubject(Part("{}") + "." + Part("{}") + ".x"));
}

TEST(Passwords, Argon2idHashAndVerify) {
  std::string h = HashPassword("correct horse");
  EXPECT_EQ(h.rfind("$argon2id$v=19$m=19456,t=2,p=1$", 0), 0u) << h;
  EXPECT_TRUE(VerifyPassword(h, "correct horse"));
  EXPECT_FALSE(VerifyPassword(h, "correct horsf"));
  EXPECT_FALSE(VerifyPassword("garbage", "x"));
  EXPECT_NE(HashPassword("correct horse"), h) << "salts must differ";
  EXPECT_FALSE(VerifyPassword(h, std::string(2000, 'a')));
}

}  // namespace
}  // namespace boing::crypto
