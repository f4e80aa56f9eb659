// The dashboard's static file handler (DASHBOARD_DIR): SPA fallback, traversal refusal, content
// types and caching headers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <filesystem>
#include <fstream>

#include "app.h"

namespace boing {
namespace {

namespace fs = std::filesystem;

std::string Header(const http::Response& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

class StaticFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("boing-static-" + std::to_string(::getpid()));
    fs::remove_all(base_);
    root_ = base_ / "dist";
    fs::create_directories(root_ / "assets");
    Write(root_ / "index.html", "<!doctype html><title>Boing</title>");
    Write(root_ / "assets" / "index-AbC123.js", "console.log(1)");
    Write(root_ / "assets" / "index-AbC123.css", "body{}");
    Write(root_ / "favicon.svg", "<svg/>");
    Write(root_ / ".env", "SECRET=1");
    Write(base_ / "secret.txt", "outside");
    fs::create_symlink(base_ / "secret.txt", root_ / "leak.txt");
    handler_ = DashboardHandler(root_.string());
  }
  void TearDown() override { fs::remove_all(base_); }

  static void Write(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }

  http::Response Get(const std::string& path, std::string if_none_match = "") {
    http::Request req;
    req.method = "GET";
    req.path = path;
    req.target = path;
    if (!if_none_match.empty()) req.headers.emplace_back("If-None-Match", if_none_match);
    boost::asio::io_context io;
    auto fut = boost::asio::co_spawn(io, handler_(req), boost::asio::use_future);
    io.run();
    return fut.get();
  }

  fs::path base_, root_;
  http::Handler handler_;
};

TEST_F(StaticFiles, ServesFilesWithTheirContentType) {
  auto r = Get("/assets/index-AbC123.js");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "console.log(1)");
  EXPECT_EQ(r.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(Get("/assets/index-AbC123.css").content_type, "text/css; charset=utf-8");
  EXPECT_EQ(Get("/favicon.svg").content_type, "image/svg+xml");
  EXPECT_EQ(Header(r, "X-Content-Type-Options"), "nosniff");
}

TEST_F(StaticFiles, HashedAssetsAreImmutableEverythingElseRevalidated) {
  EXPECT_EQ(Header(Get("/assets/index-AbC123.js"), "Cache-Control"),
            "public, max-age=31536000, immutable");
  EXPECT_EQ(Header(Get("/favicon.svg"), "Cache-Control"), "no-cache");
  auto index = Get("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(Header(index, "Cache-Control"), "no-cache");
  EXPECT_NE(Header(index, "Content-Security-Policy").find("script-src 'self'"), std::string::npos);
  // Revalidation with the ETag answers 304 without a body.
  std::string etag = Header(index, "ETag");
  ASSERT_FALSE(etag.empty());
  auto again = Get("/alerts", etag);
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
}

TEST_F(StaticFiles, ClientRoutesGetIndexHtml) {
  for (std::string p : {"/", "/alerts", "/alerts/42", "/logs/", "/deep/client/route"}) {
    auto r = Get(p);
    EXPECT_EQ(r.status, 200) << p;
    EXPECT_EQ(r.body, "<!doctype html><title>Boing</title>") << p;
  }
}

TEST_F(StaticFiles, MissingFilesAndApiPathsAre404NotHtml) {
  for (std::string p :
       {"/assets/index-old.js", "/missing.png", "/api", "/api/nope", "/ws", "/ws/unknown"}) {
    auto r = Get(p);
    EXPECT_EQ(r.status, 404) << p;
    EXPECT_EQ(r.content_type, "application/json") << p;
  }
  // "/apis" is a client route, not the API.
  EXPECT_EQ(Get("/apis").status, 200);
}

TEST_F(StaticFiles, NothingOutsideTheDirectoryIsServed) {
  for (std::string p : std::vector<std::string>{"/../secret.txt", "/assets/../../secret.txt", "/..",
                                                "/.env", "/assets/..\\..\\secret.txt",
                                                std::string("/index.html\0.js", 16)}) {
    auto r = Get(p);
    EXPECT_EQ(r.status, 404) << p;
    EXPECT_EQ(r.body.find("outside"), std::string::npos) << p;
    EXPECT_EQ(r.body.find("SECRET"), std::string::npos) << p;
  }
  // A symlink leading out of the directory is not followed.
  auto r = Get("/leak.txt");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body.find("outside"), std::string::npos);
}

TEST(ResolveStaticPath, SplitsAndRefuses) {
  auto p = ResolveStaticPath("//assets/./a.js");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->relative, fs::path("assets/a.js"));
  EXPECT_TRUE(p->hashed_asset);
  EXPECT_TRUE(p->looks_like_file);
  auto route = ResolveStaticPath("/alerts/7");
  ASSERT_TRUE(route);
  EXPECT_FALSE(route->looks_like_file);
  EXPECT_FALSE(route->hashed_asset);
  EXPECT_FALSE(ResolveStaticPath("/a/../b"));
  EXPECT_FALSE(ResolveStaticPath("/.git/config"));
  EXPECT_FALSE(ResolveStaticPath("/a\\b"));
}

TEST_F(StaticFiles, UnbuiltDashboardSaysSo) {
  fs::remove(root_ / "index.html");
  auto r = Get("/alerts");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("dashboard not built"), std::string::npos);
}

}  // namespace
}  // namespace boing
