// The cluster's HTTP API as its handlers see it: a request already read and
// checked (the caller's TLS identity verified), a route table, and the one
// mapping from an Error's kind to an HTTP status. No sockets here: the
// HTTPS server (server.hpp) reads requests off mutual-TLS connections and
// hands each to Router::dispatch; tests call dispatch directly.
//
//   Router r;
//   r.add("GET", "/v1/nodes/:uuid", [&](const Request& q) -> Result<Reply> {
//     return Reply::json(to_json(store.get_node(q.param("uuid"))));
//   });
//
// Errors travel as the body {"error": {"code": "<errc name>", "message": "..."}}
// with the status of http_status(code); api::error_from_response() reads
// them back on the client side, so a refusal keeps its kind end to end.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "ca/tls_ca.hpp"
#include "common/result.hpp"

namespace vigil::api {

// Who is calling, as the TLS handshake proved it.
struct Peer {
  std::string address;                      // "ip:port" of the TCP peer
  std::optional<ca::TlsIdentity> identity;  // the verified client certificate, if one was sent
  std::string certificate_der;              // that certificate (DER); empty when none
  // What a proxy says it forwards (the headers X-Forwarded-For and
  // X-Vigil-Forwarded-Certificate, as received, unchecked): only the auth
  // service decides whether to believe them (authsvc::AuthService::caller).
  std::optional<std::string> forwarded_for;
  std::optional<std::string> forwarded_certificate;
  // A browser session (docs/api.md, "Browser sessions"), read only on a
  // port that takes them (ServerOptions::browser_sessions: the proxy's web
  // port): the cookie __Host-vigil_session and the X-Vigil-CSRF header, as
  // received, unchecked (authsvc::AuthService::caller checks them).
  std::optional<std::string> web_session;
  std::optional<std::string> web_csrf;
  bool web_port = false;  // the request came to such a port (the web UI is served there only)
  // The same, forwarded by a proxy on another host (the headers
  // X-Vigil-Forwarded-Session and X-Vigil-Forwarded-CSRF): believed only
  // from a proxy identity, as the forwarded certificate is.
  std::optional<std::string> forwarded_session;
  std::optional<std::string> forwarded_csrf;
};

struct Request {
  std::string method;                        // "GET", "POST", "PUT", "DELETE"
  std::string path;                          // percent-decoded, without the query
  std::map<std::string, std::string> params; // the route's ":name" segments
  std::map<std::string, std::string> query;  // percent-decoded; a name given twice is refused
  std::map<std::string, std::string> headers;  // lower-case names
  std::string content_type;                  // media type only ("application/json")
  std::string body;                          // raw bytes
  nlohmann::json json;                       // the body parsed, when content_type is JSON; else null
  Peer peer;

  // The named route segment (asserts the route declares it).
  const std::string& param(std::string_view name) const;
  // The query value, or nullopt.
  std::optional<std::string> query_value(std::string_view name) const;
};

// A handler's answer: JSON, or bytes of a given type (a recording).
struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra response headers
  static Reply json(const nlohmann::json& value, int status = 200);
  static Reply bytes(std::string data, std::string content_type = "application/octet-stream");
  static Reply no_content();  // 204
};

using Handler = std::function<Result<Reply>(const Request&)>;

struct RouteOptions {
  size_t max_body = 1 << 20;  // bytes a request may carry (413 beyond)
  // The handler waits on the disk (a synced write: an event batch, a
  // recording chunk): it runs on the server's disk pool, so that requests
  // that only compute (heartbeats, reads) never queue behind a sync.
  bool waits_on_disk = false;
};

// The status an error of that kind is answered with.
int http_status(Errc code);
// The inverse, for clients: the kind a status stands for when the body
// does not name one.
Errc errc_from_status(int status);
// {"error": {"code": ..., "message": ...}}
nlohmann::json error_body(const Error& e);
// The Error a non-2xx response stands for: its code and message when the
// body has them, else one made from the status (the message says what
// came back, bounded).
Error error_from_response(int status, std::string_view body);

class Router {
 public:
  // pattern: "/v1/users/:name" — literal segments and ":name" captures,
  // each matching one non-empty segment. Adding the same method and
  // pattern twice is a bug (asserted).
  void add(std::string method, std::string pattern, Handler handler, RouteOptions options = {});

  struct Match {
    const Handler* handler = nullptr;
    RouteOptions options;
    std::map<std::string, std::string> params;
  };
  // What the server asks once the request head is read (before the body):
  // the route, or the reply to send instead: 404 (no such path, or a path
  // that is not canonical) or 405 with Allow (the path exists, not for
  // this method).
  std::variant<Match, Reply> match(std::string_view method, std::string_view path) const;
  // The handler for every request no route matches (instead of 404/405):
  // the proxy's web port forwards them to the auth service.
  void set_fallback(Handler handler, RouteOptions options = {});

  // The methods a path takes (for 405's Allow header); empty when none.
  std::vector<std::string> methods(std::string_view path) const;

  // Runs the request's handler and turns an error into its response.
  // A handler that throws is answered 500 with a generic message (the
  // exception's text is not sent: it may hold internal detail).
  Reply dispatch(Request request) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;  // ":name" for a capture
    Handler handler;
    RouteOptions options;
  };
  std::vector<Route> routes_;
  std::optional<Handler> fallback_;
  RouteOptions fallback_options_;
};

// Splits "/a/b/c" into {"a","b","c"}; nullopt for a path that does not
// start with "/", has an empty segment, or "." / ".." segments.
std::optional<std::vector<std::string>> split_path(std::string_view path);

}  // namespace vigil::api
