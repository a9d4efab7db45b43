#include "api/router.hpp"

#include <cassert>
#include <exception>

namespace vigil::api {

namespace {

constexpr Errc kAllCodes[] = {
    Errc::invalid_argument,    Errc::not_found,          Errc::already_exists,
    Errc::permission_denied,   Errc::unauthenticated,    Errc::failed_precondition,
    Errc::resource_exhausted,  Errc::unavailable,        Errc::deadline_exceeded,
    Errc::data_loss,           Errc::internal,
};

// A message from the other side is shown to a person: keep it one bounded line.
std::string bounded_line(std::string_view s, size_t max = 512) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c == '\n' || c == '\r' || c == '\0') ? ' ' : c;
  if (s.size() > max) out += "...";
  return out;
}

Reply error_reply(const Error& e) {
  return Reply::json(error_body(e), http_status(e.kind()));
}

}  // namespace

const std::string& Request::param(std::string_view name) const {
  auto it = params.find(std::string(name));
  assert(it != params.end() && "the route does not declare this parameter");
  return it->second;
}

std::optional<std::string> Request::query_value(std::string_view name) const {
  auto it = query.find(std::string(name));
  if (it == query.end()) return std::nullopt;
  return it->second;
}

Reply Reply::json(const nlohmann::json& value, int status) {
  Reply r;
  r.status = status;
  // Invalid UTF-8 in a value is replaced, never thrown on: the body is for
  // a client, and one bad byte must not turn an answer into a 500.
  r.body = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

Reply Reply::bytes(std::string data, std::string content_type) {
  Reply r;
  r.content_type = std::move(content_type);
  r.body = std::move(data);
  return r;
}

Reply Reply::no_content() {
  Reply r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

int http_status(Errc code) {
  switch (code) {
    case Errc::invalid_argument: return 400;
    case Errc::unauthenticated: return 401;
    case Errc::permission_denied: return 403;
    case Errc::not_found: return 404;
    case Errc::already_exists: return 409;
    case Errc::failed_precondition: return 412;
    case Errc::resource_exhausted: return 429;
    case Errc::unavailable: return 503;
    case Errc::deadline_exceeded: return 504;
    case Errc::data_loss:
    case Errc::internal:
    case Errc::unspecified: return 500;
  }
  return 500;
}

Errc errc_from_status(int status) {
  switch (status) {
    case 400: case 405: case 411: case 414: case 415: case 431: return Errc::invalid_argument;
    case 401: return Errc::unauthenticated;
    case 403: return Errc::permission_denied;
    case 404: return Errc::not_found;
    case 409: return Errc::already_exists;
    case 412: return Errc::failed_precondition;
    case 413: case 429: return Errc::resource_exhausted;
    case 502: case 503: return Errc::unavailable;
    case 408: case 504: return Errc::deadline_exceeded;
    default: return Errc::internal;
  }
}

nlohmann::json error_body(const Error& e) {
  return {{"error", {{"code", std::string(errc_name(e.kind()))}, {"message", e.message}}}};
}

Error error_from_response(int status, std::string_view body) {
  auto parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object()) {
    const auto& err = parsed["error"];
    Errc code = errc_from_status(status);
    if (err.contains("code") && err["code"].is_string()) {
      for (Errc c : kAllCodes) {
        if (errc_name(c) == err["code"].get<std::string>()) code = c;
      }
    }
    std::string message = err.contains("message") && err["message"].is_string()
                              ? bounded_line(err["message"].get<std::string>(), 4096)
                              : "the server answered " + std::to_string(status);
    return Error::of(code, message);
  }
  return Error::of(errc_from_status(status),
                   "the server answered " + std::to_string(status) +
                       (body.empty() ? std::string() : ": " + bounded_line(body)));
}

std::optional<std::vector<std::string>> split_path(std::string_view path) {
  if (path.empty() || path.front() != '/') return std::nullopt;
  std::vector<std::string> out;
  if (path == "/") return out;
  size_t start = 1;
  while (true) {
    size_t end = path.find('/', start);
    std::string_view seg = path.substr(start, end == std::string_view::npos ? std::string_view::npos
                                                                             : end - start);
    if (seg.empty() || seg == "." || seg == "..") return std::nullopt;
    out.emplace_back(seg);
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

void Router::add(std::string method, std::string pattern, Handler handler, RouteOptions options) {
  auto segments = split_path(pattern);
  assert(segments && "a route pattern is an absolute path with no empty segments");
  for (const auto& r : routes_) {
    assert(!(r.method == method && r.segments == *segments) && "route added twice");
    (void)r;
  }
  routes_.push_back(Route{std::move(method), std::move(*segments), std::move(handler), options});
}

void Router::set_fallback(Handler handler, RouteOptions options) {
  fallback_ = std::move(handler);
  fallback_options_ = options;
}

namespace {

bool segments_match(const std::vector<std::string>& pattern, const std::vector<std::string>& path,
                    std::map<std::string, std::string>* params) {
  if (pattern.size() != path.size()) return false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (!pattern[i].empty() && pattern[i][0] == ':') {
      if (params) (*params)[pattern[i].substr(1)] = path[i];
    } else if (pattern[i] != path[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::vector<std::string> Router::methods(std::string_view path) const {
  std::vector<std::string> out;
  auto segments = split_path(path);
  if (!segments) return out;
  for (const auto& r : routes_) {
    if (segments_match(r.segments, *segments, nullptr)) out.push_back(r.method);
  }
  return out;
}

std::variant<Router::Match, Reply> Router::match(std::string_view method,
                                                 std::string_view path) const {
  auto segments = split_path(path);
  if (!segments) {
    return error_reply(Error::of(Errc::not_found, "no such API path: " + bounded_line(path, 256)));
  }
  // A literal segment wins over a capture: "/v1/users/me" before "/v1/users/:name".
  const Route* best = nullptr;
  size_t best_literals = 0;
  for (const auto& r : routes_) {
    if (r.method != method || !segments_match(r.segments, *segments, nullptr)) continue;
    size_t literals = 0;
    for (const auto& s : r.segments) literals += (s.empty() || s[0] != ':');
    if (!best || literals > best_literals) {
      best = &r;
      best_literals = literals;
    }
  }
  if (best) {
    Match m;
    m.handler = &best->handler;
    m.options = best->options;
    segments_match(best->segments, *segments, &m.params);
    return m;
  }
  if (fallback_) {
    Match m;
    m.handler = &*fallback_;
    m.options = fallback_options_;
    return m;
  }
  auto allowed = methods(path);
  if (allowed.empty()) {
    return error_reply(Error::of(Errc::not_found, "no such API path: " + bounded_line(path, 256)));
  }
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  Reply r = error_reply(Error::of(Errc::invalid_argument, bounded_line(method, 32) + " is not allowed on " +
                                                              bounded_line(path, 256) + "; use " + list));
  r.status = 405;
  r.headers.emplace_back("Allow", list);
  return r;
}

Reply Router::dispatch(Request request) const {
  auto m = match(request.method, request.path);
  if (auto* reply = std::get_if<Reply>(&m)) return std::move(*reply);
  auto& match = std::get<Match>(m);
  if (request.body.size() > match.options.max_body) {
    Reply r = error_reply(Error::of(Errc::resource_exhausted,
                                    "the request body is " + std::to_string(request.body.size()) +
                                        " bytes; this call takes at most " +
                                        std::to_string(match.options.max_body)));
    r.status = 413;
    return r;
  }
  request.params = std::move(match.params);
  try {
    Result<Reply> reply = (*match.handler)(request);
    if (!reply) return error_reply(reply.error());
    return std::move(reply).value();
  } catch (const std::exception&) {
    return error_reply(Error::of(Errc::internal,
                                 "the server failed to answer this request; its log says why"));
  }
}

}  // namespace vigil::api
