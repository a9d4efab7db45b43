#include "web/assets.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.hpp"

namespace vigil::web {

namespace fs = std::filesystem;

std::string_view media_type(std::string_view name) {
  auto dot = name.rfind('.');
  if (dot == std::string_view::npos || name.find('/', dot) != std::string_view::npos) return "";
  std::string_view ext = name.substr(dot + 1);
  if (ext == "html") return "text/html; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
  if (ext == "json" || ext == "map") return "application/json";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "png") return "image/png";
  if (ext == "ico") return "image/x-icon";
  if (ext == "woff2") return "font/woff2";
  if (ext == "txt") return "text/plain; charset=utf-8";
  return "";
}

Result<Assets> Assets::load(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(dir) / "index.html", ec))
    return Error::of(Errc::not_found,
                     "the web UI's assets are not in " + dir +
                         " (no index.html): build them (make build) or set "
                         "proxy_service.web_assets_dir to where they are installed");
  Assets out;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) return Error::of(Errc::unavailable, "cannot read " + dir + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return Error::of(Errc::unavailable, "cannot read " + dir + ": " + ec.message());
    if (it.depth() >= kMaxDepth) {
      it.disable_recursion_pending();
      continue;
    }
    // symlink_status: a link is never followed (out of the directory).
    auto st = it->symlink_status(ec);
    if (ec || !fs::is_regular_file(st)) continue;
    std::string rel = it->path().lexically_relative(dir).generic_string();
    if (rel.empty() || rel.front() == '.' || rel.find("/.") != std::string::npos) continue;
    std::string_view type = media_type(rel);
    if (type.empty()) continue;
    if (out.files_.size() >= kMaxFiles)
      return Error::of(Errc::resource_exhausted, dir + " holds more than " + std::to_string(kMaxFiles) +
                                                     " files to serve; point web_assets_dir at the built UI only");
    std::ifstream in(it->path(), std::ios::binary);
    std::ostringstream body;
    body << in.rdbuf();
    if (!in.good() && !in.eof())
      return Error::of(Errc::unavailable, "cannot read " + it->path().string());
    File f{std::string(type), body.str()};
    out.bytes_ += f.body.size();
    if (out.bytes_ > kMaxBytes)
      return Error::of(Errc::resource_exhausted, dir + " holds more than " + std::to_string(kMaxBytes >> 20) +
                                                     " MiB to serve; point web_assets_dir at the built UI only");
    out.files_.emplace(std::move(rel), std::move(f));
  }
  return out;
}

namespace {

api::Reply with_policy(api::Reply r) {
  r.headers.emplace_back("Content-Security-Policy", std::string(kContentSecurityPolicy));
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  return r;
}

api::Reply redirect(std::string location) {
  api::Reply r;
  r.status = 302;
  r.content_type = "text/plain; charset=utf-8";
  r.body = "see " + location + "\n";
  r.headers.emplace_back("Location", std::move(location));
  return with_policy(std::move(r));
}

api::Reply not_found(std::string_view path) {
  return with_policy(api::Reply::json(
      api::error_body(Error::of(Errc::not_found, "the web UI has no file " +
                                                     std::string(path.substr(0, 256)))),
      404));
}

}  // namespace

Result<Assets> load_for_proxy(const std::string& configured_dir) {
  if (!configured_dir.empty()) return Assets::load(configured_dir);
  const std::string dir = default_assets_dir();
  auto loaded = Assets::load(dir);
  if (loaded || loaded.error().kind() != Errc::not_found) return loaded;
  log::warn("proxy: " + loaded.error().message + "; the web UI is not served (the API is)");
  Assets none;
  none.missing_ = loaded.error().message;
  return none;
}

api::Reply Assets::serve(std::string_view path) const {
  if (!missing_.empty())
    return with_policy(api::Reply::json(api::error_body(Error::of(Errc::not_found, missing_)), 404));
  // "/web/" itself never reaches here (the transport refuses an empty
  // segment): the page is /web/index.html.
  if (path == "/" || path == "/web") return redirect("/web/index.html");
  if (!path.starts_with("/web/")) return not_found(path);
  std::string_view rel = path.substr(5);
  if (rel.empty()) rel = "index.html";
  auto it = files_.find(rel);
  if (it == files_.end()) {
    // The page's own routes (no extension) are the page.
    auto last = rel.rfind('/');
    std::string_view name = last == std::string_view::npos ? rel : rel.substr(last + 1);
    if (name.find('.') != std::string_view::npos) return not_found(path);
    it = files_.find(std::string_view("index.html"));
    if (it == files_.end()) return not_found(path);
  }
  return with_policy(api::Reply::bytes(it->second.body, it->second.type));
}

std::string default_assets_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "/usr/share/vigil/web";
  return (exe.parent_path().parent_path() / "share" / "vigil" / "web").lexically_normal().string();
}

void add_routes(api::Router& router, const Assets& assets) {
  auto handler = [&assets](const api::Request& q) -> Result<api::Reply> {
    if (!q.peer.web_port)
      return Error::of(Errc::not_found, "the web UI is served on the proxy's web port, not here");
    return assets.serve(q.path);
  };
  router.add("GET", "/", handler);
  router.add("GET", "/web", handler);
  std::string pattern = "/web";
  for (int depth = 1; depth <= kMaxDepth; ++depth) {
    pattern += "/:p" + std::to_string(depth);
    router.add("GET", pattern, handler);
  }
}

}  // namespace vigil::web
