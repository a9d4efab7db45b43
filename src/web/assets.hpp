// The web UI's static files (issue 11 §2), served by the proxy's web port
// under /web/ (and / redirecting there).
//
// The built directory (web/ after `npm ci`, copied by the build into
// <build>/share/vigil/web) is read whole into memory at start: regular files
// only (symlinks and other kinds are skipped), at most kMaxFiles files,
// kMaxBytes in all, kMaxDepth directories deep, and only names of the types
// below (anything else is not served). A request is then a look-up of its
// path in that map: nothing it says reaches the file system, so no
// traversal is possible whatever it holds (the transport already refuses
// "." / ".." segments and encoded "/").
//
// Every answer carries a Content-Security-Policy that allows scripts from
// the page's own origin only (no inline script, no eval), frames from
// nowhere, connections to the same origin; X-Frame-Options DENY and
// Referrer-Policy no-referrer. A path below /web/ with no file extension
// that names no file gets index.html (the page's own routes: /web/player/SID,
// /web/invite/TOKEN); one with an extension is 404.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "api/router.hpp"
#include "common/result.hpp"

namespace vigil::web {

inline constexpr size_t kMaxFiles = 2000;
inline constexpr size_t kMaxBytes = 64u << 20;
inline constexpr int kMaxDepth = 6;
inline constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

// The media type of a file name by its extension; "" for a type not served.
std::string_view media_type(std::string_view name);

class Assets {
 public:
  // Reads dir (see above). not_found when dir has no index.html, with what
  // to do; resource_exhausted beyond the bounds.
  static Result<Assets> load(const std::string& dir);
  size_t files() const { return files_.size(); }
  size_t bytes() const { return bytes_; }
  // The answer to GET `path` ("/", "/web", "/web/...").
  api::Reply serve(std::string_view path) const;

 private:
  struct File {
    std::string type;
    std::string body;
  };
  std::string missing_;  // why there are no files (load_for_proxy)
  friend Result<Assets> load_for_proxy(const std::string&);
  std::map<std::string, File, std::less<>> files_;  // by path below the directory: "index.html", "js/app.js"
  size_t bytes_ = 0;
};

// Where the assets are looked for when proxy_service.web_assets_dir is not
// set: <directory of this executable>/../share/vigil/web.
std::string default_assets_dir();

// What the proxy serves: the configured directory (an error when it cannot
// be read), or else the default one; when that has none, no files (each
// page answered 404 saying why, the API unaffected) and a warning logged.
Result<Assets> load_for_proxy(const std::string& configured_dir);

// GET / (redirect), /web, /web/ and /web/<1 to kMaxDepth segments> on
// router, answered from assets on a port with Peer::web_port only (404
// elsewhere: the auth service's own port). assets outlives the router.
void add_routes(api::Router& router, const Assets& assets);

}  // namespace vigil::web
