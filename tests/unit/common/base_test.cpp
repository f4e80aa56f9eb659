#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "boing/log.h"
#include "boing/net.h"

namespace boing {
namespace {

TEST(Net, CidrMatching) {
  EXPECT_TRUE(IpInCidr("10.1.2.3", "10.0.0.0/8"));
  EXPECT_FALSE(IpInCidr("11.1.2.3", "10.0.0.0/8"));
  EXPECT_TRUE(IpInCidr("192.168.1.7", "192.168.1.7"));
  EXPECT_TRUE(IpInCidr("192.168.1.7", "192.168.1.7/32"));
  EXPECT_FALSE(IpInCidr("192.168.1.8", "192.168.1.7/32"));
  EXPECT_TRUE(IpInCidr("203.0.113.9", "0.0.0.0/0"));
  EXPECT_TRUE(IpInCidr("172.16.5.4", "172.16.0.0/12"));
  EXPECT_FALSE(IpInCidr("172.32.0.1", "172.16.0.0/12"));
  EXPECT_TRUE(IpInCidr("2001:db8::1", "2001:db8::/32"));
  EXPECT_FALSE(IpInCidr("2001:db9::1", "2001:db8::/32"));
  EXPECT_TRUE(IpInCidr("::1", "::1/128"));
  EXPECT_TRUE(IpInCidr("::ffff:10.0.0.1", "10.0.0.0/8"));
  EXPECT_TRUE(IpInCidr("10.0.0.1", "::ffff:10.0.0.0/104"));
  EXPECT_FALSE(IpInCidr("garbage", "10.0.0.0/8"));
  EXPECT_FALSE(IpInCidr("10.0.0.1", "10.0.0.0/33"));
  EXPECT_FALSE(IpInCidr("10.0.0.1", "10.0.0.0/"));
  EXPECT_FALSE(IpInCidr("10.0.0.1", "10.0.0.0/8x"));
  EXPECT_TRUE(IsValidCidr("::/0"));
  EXPECT_FALSE(IsValidCidr("1.2.3.4/-1"));
  EXPECT_TRUE(IsValidIp("1.2.3.4"));
  EXPECT_FALSE(IsValidIp("1.2.3"));
  EXPECT_FALSE(IsValidIp("1.2.3.4:80"));
  // Found by fuzz_net: inet_pton stopped at an embedded NUL, so trailing bytes passed as an IP.
  using namespace std::string_view_literals;
  EXPECT_FALSE(IsValidIp("1.0.0.1\0<script>"sv));
  EXPECT_FALSE(IsValidCidr("10.0.0.0\0/8"sv));
  EXPECT_FALSE(IpInCidr("10.1.2.3\0x"sv, "10.0.0.0/8"));
}

TEST(Net, PrivateAddresses) {
  for (const char* ip :
       {"127.0.0.1", "10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.1.1", "100.64.0.1",
        "0.0.0.0", "::1", "::", "fd00::1", "fe80::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsPrivateAddress(ip)) << ip;
  }
  for (const char* ip : {"8.8.8.8", "203.0.113.9", "2001:db8::1", "172.32.0.1", "100.128.0.1",
                         "::ffff:8.8.8.8", "", "not-an-ip", "10.0.0.1/8"}) {
    EXPECT_FALSE(IsPrivateAddress(ip)) << ip;
  }
}

TEST(Net, ResolveClientIp) {
  const std::vector<std::string> trusted = {"127.0.0.1", "10.0.0.0/8"};
  // Untrusted peer: headers ignored.
  EXPECT_EQ(ResolveClientIp("203.0.113.5", "1.1.1.1", "", trusted), "203.0.113.5");
  // Trusted peer: the right-most untrusted hop.
  EXPECT_EQ(ResolveClientIp("127.0.0.1", "1.1.1.1, 198.51.100.7, 10.0.0.2", "", trusted),
            "198.51.100.7");
  // A spoofed left-most entry does not win over a real hop.
  EXPECT_EQ(ResolveClientIp("127.0.0.1", "6.6.6.6, 198.51.100.7", "", trusted), "198.51.100.7");
  EXPECT_EQ(ResolveClientIp("127.0.0.1", "198.51.100.7:5555", "", trusted), "198.51.100.7");
  EXPECT_EQ(ResolveClientIp("127.0.0.1", "[2001:db8::1]:80", "", trusted), "2001:db8::1");
  EXPECT_EQ(ResolveClientIp("127.0.0.1", "", "for=192.0.2.60;proto=http;by=203.0.113.43", trusted),
            "192.0.2.60");
  EXPECT_EQ(ResolveClientIp("127.0.0.1", "", R"(for="[2001:db8:cafe::17]:4711")", trusted),
            "2001:db8:cafe::17");
  EXPECT_EQ(ResolveClientIp("127.0.0.1", "", "for=192.0.2.43, for=10.0.0.9", trusted),
            "192.0.2.43");
  // Garbage: fall back to the peer.
  EXPECT_EQ(ResolveClientIp("127.0.0.1", "not-an-ip", "", trusted), "127.0.0.1");
  // All hops trusted: the left-most.
  EXPECT_EQ(ResolveClientIp("127.0.0.1", "10.0.0.5, 10.0.0.6", "", trusted), "10.0.0.5");
}

TEST(Log, WritesEscapedJsonAndRotates) {
  auto dir = std::filesystem::temp_directory_path() / ("boing_log_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string file = (dir / "boing.log").string();
  log::Options o;
  o.to_stdout = false;
  o.file = file;
  o.max_file_bytes = 1000;
  o.max_files = 2;
  log::Configure(o);
  log::Info("quote \" backslash \\ newline \n ctl \x01", {{"k", "v\"x"}, {"n", 5}, {"b", true}});
  log::Flush();
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  EXPECT_NE(line.find(R"("msg":"quote \" backslash \\ newline \n ctl \u0001")"), std::string::npos)
      << line;
  EXPECT_NE(line.find(R"("k":"v\"x","n":5,"b":true)"), std::string::npos) << line;
  for (int i = 0; i < 200; ++i) log::Info("filler line to force rotation", {{"i", i}});
  log::Flush();
  EXPECT_TRUE(std::filesystem::exists(file + ".1"));
  EXPECT_TRUE(std::filesystem::exists(file + ".2"));
  EXPECT_FALSE(std::filesystem::exists(file + ".3"));
  EXPECT_LE(std::filesystem::file_size(file), 1000u);
  log::Configure(log::Options{});
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace boing
