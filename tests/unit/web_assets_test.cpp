// The web UI's static files (issue 11 §2): served from memory by path, with
// their media types and a Content-Security-Policy that allows no inline
// script; nothing outside the directory (no symlink followed, no traversal,
// no file of a type not served); on the web port only.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../support/temp_dir.hpp"
#include "api/server.hpp"
#include "web/assets.hpp"

namespace vigil::web {
namespace {

namespace fs = std::filesystem;

std::string header(const api::Reply& r, std::string_view name) {
  for (const auto& [n, v] : r.headers)
    if (n == name) return v;
  return "";
}

class WebAssets : public ::testing::Test {
 protected:
  void SetUp() override {
    write("index.html", "<!doctype html><title>Vigil</title>");
    write("style.css", "body{}");
    write("js/app.js", "export const x = 1;");
    write("vendor/xterm.js", "/* xterm */");
    write("secret.key", "PRIVATE");          // a type not served
    write(".hidden.js", "hidden");           // a dot file
    write("../outside.js", "outside");        // beside the directory
    fs::create_symlink(dir_.file("outside.js"), root() + "/js/link.js");
    fs::create_symlink("/etc", root() + "/etc");
  }
  std::string root() const { return dir_.file("web"); }
  void write(const std::string& rel, const std::string& text) {
    fs::path p = fs::path(root()) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  Assets load() {
    auto a = Assets::load(root());
    EXPECT_TRUE(a.ok()) << (a ? "" : a.error().message);
    return std::move(a.value());
  }
  ::vigil::test::TempDir dir_;
};

TEST_F(WebAssets, FilesAreServedWithTheirTypesAndAPolicyWithoutInlineScript) {
  Assets a = load();
  EXPECT_EQ(a.files(), 4u);  // index.html, style.css, js/app.js, vendor/xterm.js
  struct Case {
    const char* path;
    const char* type;
    const char* body;
  };
  for (const Case& c : {Case{"/web/index.html", "text/html; charset=utf-8", "<!doctype html><title>Vigil</title>"},
                        Case{"/web/style.css", "text/css; charset=utf-8", "body{}"},
                        Case{"/web/js/app.js", "text/javascript; charset=utf-8", "export const x = 1;"},
                        Case{"/web/vendor/xterm.js", "text/javascript; charset=utf-8", "/* xterm */"}}) {
    api::Reply r = a.serve(c.path);
    EXPECT_EQ(r.status, 200) << c.path;
    EXPECT_EQ(r.content_type, c.type) << c.path;
    EXPECT_EQ(r.body, c.body) << c.path;
    const std::string csp = header(r, "Content-Security-Policy");
    EXPECT_NE(csp.find("script-src 'self';"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("script-src 'self' 'unsafe-inline'"), std::string::npos) << csp;
    EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
    EXPECT_EQ(header(r, "X-Frame-Options"), "DENY");
  }
}

TEST_F(WebAssets, TheRootAndWebRedirectToThePage) {
  Assets a = load();
  for (const char* p : {"/", "/web"}) {
    api::Reply r = a.serve(p);
    EXPECT_EQ(r.status, 302) << p;
    EXPECT_EQ(header(r, "Location"), "/web/index.html") << p;
  }
}

TEST_F(WebAssets, ThePagesOwnRoutesGetThePageAndUnknownFilesAre404) {
  Assets a = load();
  for (const char* p : {"/web/player/9b825e22-744d-4130-94c5-dea49198ae3d", "/web/audit", "/web/invite/abc"}) {
    api::Reply r = a.serve(p);
    EXPECT_EQ(r.status, 200) << p;
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8") << p;
  }
  for (const char* p : {"/web/nope.js", "/web/js/nope.css", "/other"}) EXPECT_EQ(a.serve(p).status, 404) << p;
}

TEST_F(WebAssets, NothingOutsideTheDirectoryNorOfATypeNotServedIsReachable) {
  Assets a = load();
  // A symlink out of the directory, a linked directory, a key file, a dot file.
  for (const char* p : {"/web/js/link.js", "/web/etc/hostname.txt", "/web/secret.key", "/web/.hidden.js"})
    EXPECT_EQ(a.serve(p).status, 404) << p;
  // A path with no extension is one of the page's routes: the page, never
  // the file of that name through the linked directory.
  EXPECT_EQ(a.serve("/web/etc/passwd").body, "<!doctype html><title>Vigil</title>");
  // What the transport lets through is only ever a map key: ".." never
  // reaches the file system (and the transport refuses it besides).
  EXPECT_EQ(a.serve("/web/../outside.js").status, 404);
  EXPECT_EQ(a.serve("/web/js/../../outside.js").status, 404);
  for (const char* target : {"/web/%2e%2e/outside.js", "/web/js%2f..%2f..%2foutside.js", "/web/../outside.js"})
    EXPECT_FALSE(api::parse_target(target).ok()) << target;
}

TEST_F(WebAssets, ADirectoryWithoutTheBuiltPageIsRefusedSayingWhatToDo) {
  ::vigil::test::TempDir empty;
  auto a = Assets::load(empty.path());
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().kind(), Errc::not_found);
  EXPECT_NE(a.error().message.find("make build"), std::string::npos) << a.error().message;
}

TEST_F(WebAssets, TheRoutesAnswerOnTheWebPortOnly) {
  Assets a = load();
  api::Router router;
  add_routes(router, a);
  api::Request q;
  q.method = "GET";
  q.path = "/web/js/app.js";
  q.peer.web_port = true;
  EXPECT_EQ(router.dispatch(q).status, 200);
  q.peer.web_port = false;
  EXPECT_EQ(router.dispatch(q).status, 404);
  q.peer.web_port = true;
  q.path = "/";
  EXPECT_EQ(router.dispatch(q).status, 302);
}

TEST(WebMediaType, KnownExtensionsOnly) {
  EXPECT_EQ(media_type("a.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(media_type("a.mjs"), "text/javascript; charset=utf-8");
  EXPECT_EQ(media_type("a.svg"), "image/svg+xml");
  EXPECT_EQ(media_type("a"), "");
  EXPECT_EQ(media_type("a.js.bak"), "");
  EXPECT_EQ(media_type("dir.js/file"), "");
}

}  // namespace
}  // namespace vigil::web
