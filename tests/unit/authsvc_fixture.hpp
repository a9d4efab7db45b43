// The auth service under test: a SQLite cluster store and the CAs in a
// temp dir, a fixed clock, an emitter that keeps every audit line, and the
// routes on a Router that tests dispatch to with a Peer as the HTTPS
// server would set it after verifying a client certificate.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../support/temp_dir.hpp"
#include "audit/base64.hpp"
#include "authsvc/routes.hpp"
#include "authsvc/service.hpp"
#include "ca/key.hpp"
#include "cluster/secrets.hpp"
#include "cluster/sqlite_store.hpp"
#include "sshcert/keys.hpp"

namespace vigil::authsvc::test {

using nlohmann::json;

inline constexpr int64_t kStart = 1'800'000'000;  // 2027-01-15
inline constexpr const char* kPassword = "correct horse battery";

class CapturingEmitter : public auditlog::Emitter {
 public:
  Result<void> emit(std::string_view line, auditlog::Durability) override {
    if (auto ok = auditlog::check_event_line(line); !ok) return ok;
    if (failing)  // as a FileLog whose disk is full answers a sync emit
      return Error::of(Errc::resource_exhausted, "audit log: no space left on device");
    std::lock_guard lock(mu_);
    lines_.emplace_back(line);
    return {};
  }
  Result<void> flush() override { return {}; }
  // The events named `event`, parsed, oldest first.
  std::vector<json> events(std::string_view event) {
    std::lock_guard lock(mu_);
    std::vector<json> out;
    for (const auto& l : lines_) {
      json j = json::parse(l);
      if (j.at("event") == event) out.push_back(j);
    }
    return out;
  }
  json last(std::string_view event) {
    auto all = events(event);
    return all.empty() ? json() : all.back();
  }
  size_t count() {
    std::lock_guard lock(mu_);
    return lines_.size();
  }
  std::atomic<bool> failing{false};  // every emit refused

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

struct ClientKeys {
  ca::PrivateKey ssh = ca::PrivateKey::generate(ca::KeyAlgorithm::ed25519).value();
  ca::PrivateKey tls = ca::PrivateKey::generate(ca::KeyAlgorithm::ecdsa_p256).value();
  std::string ssh_line() const { return ssh.ssh_public_key_line("test"); }
  std::string tls_b64() const {
    std::string out;
    audit::append_base64(out, tls.spki_der());
    return out;
  }
};

class AuthFixture : public ::testing::Test {
 protected:
  void SetUp() override { start(SecondFactor::off); }

  void start(SecondFactor second_factor) {
    service_.reset();
    store_.reset();
    store_.emplace(cluster::open_sqlite(dir_.file("cluster-" + std::to_string(++generation_) +
                                                  ".db"))
                       .value());
    ASSERT_TRUE(store_->ensure_builtin_roles().ok());
    if (!cas_) cas_.emplace(ca::ClusterCAs::load_or_create(dir_.file("ca"), "alpha", kStart).value());
    Options o;
    o.cluster_name = "alpha";
    o.second_factor = second_factor;
    o.proxy_public_addrs = {"proxy.alpha.test:3080"};
    o.clock = [this] { return cluster::Time{cluster::Seconds{now_.load()}}; };
    service_.emplace(*store_, *cas_, audit_, o);
    router_ = api::Router();
    add_routes(router_, *service_);
  }

  // Peers as the HTTPS server sets them.
  static api::Peer anonymous(std::string addr = "198.51.100.7:40000") {
    return api::Peer{std::move(addr), std::nullopt, {}};
  }
  static api::Peer user_peer(std::string name, std::vector<std::string> roles = {},
                             std::string cluster = "alpha",
                             std::string addr = "198.51.100.7:40000") {
    ca::TlsIdentity id;
    id.kind = ca::TlsIdentityKind::user;
    id.cluster = std::move(cluster);
    id.name = std::move(name);
    id.roles = std::move(roles);
    return api::Peer{std::move(addr), id, "der"};
  }
  static api::Peer admin_peer() { return user_peer(std::string(kAdminName)); }
  // `not_before`: when its certificate's validity began (unix seconds).
  static api::Peer node_peer(std::string uuid, std::string cluster = "alpha",
                             int64_t not_before = 0) {
    ca::TlsIdentity id;
    id.kind = ca::TlsIdentityKind::node;
    id.cluster = std::move(cluster);
    id.name = std::move(uuid);
    id.roles = {"node"};
    id.not_before = not_before;
    return api::Peer{"192.0.2.10:50000", id, "der"};
  }

  api::Reply call(const std::string& method, const std::string& path, const api::Peer& peer,
                  const json& body = nullptr, std::map<std::string, std::string> query = {}) {
    api::Request q;
    q.method = method;
    q.path = path;
    q.peer = peer;
    q.query = std::move(query);
    if (!body.is_null()) {
      q.body = body.dump();
      q.content_type = "application/json";
      q.json = body;
    }
    return router_.dispatch(std::move(q));
  }
  static json body(const api::Reply& r) { return json::parse(r.body, nullptr, false); }
  static std::string error_message(const api::Reply& r) {
    json j = body(r);
    return j.contains("error") ? j["error"]["message"].get<std::string>() : std::string();
  }
  static std::string error_code(const api::Reply& r) {
    json j = body(r);
    return j.contains("error") ? j["error"]["code"].get<std::string>() : std::string();
  }

  Caller caller_of(const api::Peer& p) { return service_->caller(p).value(); }

  // A user with a password (sign-up done through the API).
  void make_user(const std::string& name, std::vector<std::string> roles,
                 std::vector<std::string> logins = {}) {
    auto r = call("POST", "/v1/users", admin_peer(),
                  {{"name", name}, {"roles", roles}, {"logins", logins}});
    ASSERT_EQ(r.status, 201) << r.body;
    auto s = call("POST", "/v1/signup", anonymous(),
                  {{"token", body(r)["token"]}, {"password", kPassword}});
    ASSERT_EQ(s.status, 200) << s.body;
    last_signup_ = body(s);
  }

  json login_body(const std::string& user, const std::string& password, const ClientKeys& k,
                  std::string code = "") {
    json j = {{"user", user},
              {"password", password},
              {"ssh_public_key", k.ssh_line()},
              {"tls_public_key", k.tls_b64()}};
    if (!code.empty()) j["totp_code"] = code;
    return j;
  }

  void create_role(const std::string& yaml) {
    auto r = call("POST", "/v1/resources", admin_peer(), {{"text", yaml}, {"force", true}});
    ASSERT_EQ(r.status, 200) << r.body;
  }

  ::vigil::test::TempDir dir_;
  std::atomic<int64_t> now_{kStart};
  int generation_ = 0;
  CapturingEmitter audit_;
  std::optional<cluster::ClusterStore> store_;
  std::optional<ca::ClusterCAs> cas_;
  std::optional<AuthService> service_;
  api::Router router_;
  json last_signup_;
};

// The value of a certificate extension or option with data (a wire string).
inline std::string option_text(const sshcert::Certificate& c, std::string_view name) {
  for (const auto& e : c.extensions) {
    if (e.name != name) continue;
    if (e.data.size() < 4) return {};
    return e.data.substr(4);
  }
  return "<absent>";
}

}  // namespace vigil::authsvc::test
