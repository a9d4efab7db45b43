// The cluster's HTTPS API client: synchronous, one connection kept alive
// (CLIs and the node's forwarder call it from one thread).
//
// How the server is trusted, one of:
//   trusted CAs + cluster  the server's leaf is checked with
//                          ca::verify_tls_peer(..., TlsUsage::server)
//   CA pin "sha256:..."    the CA certificate the server sends after its leaf
//                          must have that pin (ca::ca_pin); the leaf is then
//                          checked against it, for the cluster named in it
//   insecure               any certificate (the caller warns the user)
// The check runs inside the handshake, before the client sends its own
// certificate, so a client identity is never shown to a server that failed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ca/key.hpp"
#include "ca/tls_ca.hpp"
#include "common/result.hpp"

namespace vigil::api {

struct ClientOptions {
  std::string address;  // "host:port" ("[::1]:3025" for IPv6)

  // Trust: set exactly one of trusted (+ cluster), ca_pin, insecure.
  std::vector<ca::TlsCertificate> trusted;
  std::string cluster;
  std::string ca_pin;
  bool insecure = false;
  // With trusted or ca_pin: when set, the server's identity must name it
  // (its name, node name or one of its addresses). Any certificate of the
  // cluster with serverAuth passes otherwise, a node's included.
  std::string server_name;

  // The client's identity, if any (the key is read during connect only).
  const ca::PrivateKey* key = nullptr;
  ca::TlsCertificate certificate{nullptr};

  std::function<int64_t()> clock;  // unix seconds; default: the system clock
  std::chrono::milliseconds connect_timeout{10'000};   // TCP and TLS
  std::chrono::milliseconds request_timeout{60'000};   // one request and its answer
  size_t max_response_body = 64u << 20;
};

struct Response {
  int status = 0;
  std::string content_type;  // media type, lower case
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

class Client {
 public:
  // Connects and checks the server now (so a bad pin fails here).
  static Result<std::unique_ptr<Client>> connect(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One request. query is percent-encoded here; path segments are sent as
  // given (encode names with api::percent_encode). A connection the server
  // closed while idle is reopened once, for GET, PUT and DELETE only.
  Result<Response> call(std::string_view method, std::string_view path,
                        const std::map<std::string, std::string>& query = {}, std::string_view body = {},
                        std::string_view content_type = "application/json",
                        const std::map<std::string, std::string>& headers = {});
  // call() with a JSON body; a 2xx answer parsed (null when empty), any other
  // turned into its Error by api::error_from_response.
  Result<nlohmann::json> call_json(std::string_view method, std::string_view path,
                                   const nlohmann::json& body = nullptr,
                                   const std::map<std::string, std::string>& query = {});

  // The server's verified identity (nullopt in insecure mode).
  const std::optional<ca::TlsIdentity>& server_identity() const;
  // The certificates the server sent, leaf first; in pin mode, ca() is the
  // pinned CA certificate (to be stored by the caller).
  const std::vector<ca::TlsCertificate>& chain() const;
  const std::optional<ca::TlsCertificate>& ca() const;

  struct Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Refuses a server whose verified identity lacks `role` (e.g. "auth": a
// joined node's certificate is valid for servers too, and must not pass for
// the auth service). unauthenticated, naming the address; insecure
// connections (no verified identity) are refused as well.
Result<void> require_server_role(const Client& client, std::string_view address,
                                 std::string_view role);

}  // namespace vigil::api
