// A proxy on a host of its own (proxy_service enabled, auth_service not):
// what it asks the auth service for, over mutual TLS with the proxy's own
// identity (joined with a proxy token, kept in <data_dir>/proxy/node).
//
// - AuthForwarder: the web port's API. Every request the proxy does not
//   answer itself goes to the auth service as it came (method, path, query,
//   body), with the client's address in X-Forwarded-For and the client's
//   certificate, which the proxy's TLS server has verified against the
//   cluster CA, in X-Vigil-Forwarded-Certificate (base64 DER). The auth
//   service believes those headers from a proxy identity only and verifies
//   the certificate again (authsvc::AuthService::caller). Bounded: at most
//   max_forwards requests at once (beyond: 503), a connect and a request
//   timeout, the largest body any route takes; an unreachable auth service
//   is answered 502 saying so.
// - RemoteNodeDirectory: the jump port's node look-up, from GET /v1/nodes
//   (a proxy may list every node), cached a short while.
//
// run_proxy_only() is the whole process: cluster-services runs it instead
// of the auth service when only proxy_service is enabled. Its data_dir holds
// only proxy/ (the identity, the SSH host key): no CA key, no cluster state.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api/client.hpp"
#include "api/router.hpp"
#include "cluster/resources.hpp"
#include "common/result.hpp"
#include "proxy/node_directory.hpp"
#include "services/cluster_services.hpp"
#include "services/node_join.hpp"

namespace vigil::services {

inline constexpr std::string_view kForwardedForHeader = "X-Forwarded-For";
inline constexpr std::string_view kForwardedCertificateHeader = "X-Vigil-Forwarded-Certificate";
inline constexpr std::string_view kForwardedSessionHeader = "X-Vigil-Forwarded-Session";
inline constexpr std::string_view kForwardedCsrfHeader = "X-Vigil-Forwarded-CSRF";

struct ForwarderOptions {
  size_t max_forwards = 8;  // requests forwarded at once; beyond: 503
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{30'000};
  // A kept connection idle longer is not reused: the auth service closes
  // idle ones after 120 s (api::ServerOptions::idle_timeout), and a POST
  // on a connection it closed is not sent again.
  std::chrono::milliseconds max_idle{60'000};
  size_t max_response_body = 64u << 20;
};

// Connections to the auth service with the proxy's identity, at most
// max_forwards of them, reused.
class AuthForwarder {
 public:
  AuthForwarder(const NodeIdentity& identity, ForwarderOptions options = {});
  ~AuthForwarder();

  // The router's fallback: forwards q; the auth service's answer as it came.
  Result<api::Reply> forward(const api::Request& q);
  // A call of the proxy's own (no forwarded headers).
  Result<nlohmann::json> call_json(std::string_view method, const std::string& path);

  size_t forwarded() const { return forwarded_; }
  size_t refused_busy() const { return refused_busy_; }

 private:
  Result<std::unique_ptr<api::Client>> acquire();
  void release(std::unique_ptr<api::Client> c);
  const NodeIdentity& identity_;
  ForwarderOptions options_;
  std::mutex mu_;
  struct Idle {
    std::unique_ptr<api::Client> client;
    std::chrono::steady_clock::time_point since;
  };
  std::vector<Idle> idle_;
  size_t in_flight_ = 0;
  std::atomic<size_t> forwarded_{0}, refused_busy_{0};
};

// The nodes the auth service lists, for the proxy's jump port.
class RemoteNodeDirectory : public proxy::NodeDirectory {
 public:
  RemoteNodeDirectory(AuthForwarder& auth, std::string cluster_name,
                      std::chrono::milliseconds cache = std::chrono::milliseconds(2000))
      : auth_(auth), cluster_(std::move(cluster_name)), cache_(cache) {}
  Result<proxy::NodeRoute> resolve(std::string_view target, uint32_t port) override;

 private:
  AuthForwarder& auth_;
  std::string cluster_;
  std::chrono::milliseconds cache_;
  std::mutex mu_;
  std::vector<cluster::Node> nodes_;
  std::chrono::steady_clock::time_point fetched_{};
};

// GET /v1/nodes's answer into nodes (uuid, name, address, tunnel, labels).
Result<std::vector<cluster::Node>> nodes_from_json(const nlohmann::json& reply);

// The proxy's process when the auth service runs elsewhere.
int run_proxy_only(const ClusterServicesOptions& options, const std::atomic<bool>& stop);

}  // namespace vigil::services
