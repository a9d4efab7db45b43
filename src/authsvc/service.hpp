// The auth service of a cluster (issue 10): every decision it takes, as a
// C++ class with typed requests and replies. routes.hpp puts each call on
// an api::Router; the HTTPS server carries them. Nothing here opens a
// socket: the caller's identity arrives already verified (api::Peer).
//
// Who may do what (docs/api.md has the table):
// - anonymous: find, join (with a join token), signup (with a sign-up
//   token), login (password, and the TOTP code when second_factor is otp);
// - user: what the rules of the user's CURRENT roles allow, read from the
//   store at every call, so a deleted user, or one whose roles were taken
//   away, loses those rights at once, even with a certificate that is still
//   valid;
// - node: heartbeat as itself (the uuid of its certificate), read the roles
//   and the CAs; a proxy (a node joined with a proxy token) may list nodes;
// - admin: `vigilctl` on the auth host, with the identity written into
//   <data_dir>/admin at start (write_admin_identity); the user name
//   kAdminName is reserved (no user name may start with '@').
// Every refusal is audited (access.denied, user.login, instance.join with
// success=false) and answered unauthenticated (401) or permission_denied
// (403) with a message that says what to do.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "api/router.hpp"
#include "auditlog/emitter.hpp"
#include "authsvc/rate_limit.hpp"
#include "ca/authority.hpp"
#include "cluster/format.hpp"
#include "cluster/resources.hpp"
#include "cluster/roles.hpp"
#include "cluster/secrets.hpp"
#include "cluster/store.hpp"
#include "common/result.hpp"
#include "common/version.hpp"

namespace vigil::authsvc {

using cluster::Seconds;
using cluster::Time;

// The local admin's user name: no user may take it (names starting with '@'
// are refused for users).
inline constexpr std::string_view kAdminName = "@admin";
// The role of the auth service's own TLS identity (never given at a join).
inline constexpr std::string_view kAuthServerRole = ca::kAuthRole;
// The SSH certificate extension naming the user's roles (comma-separated),
// so that a node can evaluate node_labels with the roles it fetched.
inline constexpr std::string_view kRolesExtension = "vigil-roles@vigil.dev";
// The SSH certificate extension holding the user's logins trait
// (comma-separated), which {{internal.logins}} expands to on a node.
inline constexpr std::string_view kLoginsExtension = "vigil-logins@vigil.dev";
// The principal of a certificate whose roles allow no login: not a valid
// login (it starts with '-'), so it opens no account anywhere.
inline constexpr std::string_view kNoLoginPrincipal = "-vigil-no-login";

enum class SecondFactor { off, otp };
std::string_view second_factor_name(SecondFactor f);

struct Options {
  std::string cluster_name;
  std::string server_version{kVersion};
  SecondFactor second_factor = SecondFactor::off;
  // What users and nodes reach the proxy at ("proxy.example.com:3080");
  // the first makes the sign-up links.
  std::vector<std::string> proxy_public_addrs;
  Seconds heartbeat_ttl{90};        // a node is gone from lists after this without a heartbeat
  Seconds heartbeat_interval{30};   // what the heartbeat reply asks for
  // Heartbeats kept in memory and written to the store together by
  // flush_heartbeats() (one transaction: one sync to disk for all of them)
  // instead of one synced write each. A node's last heartbeat then reaches
  // the store within the flush period (vigil cluster-services: 1 s); reads
  // through this service (node lists, rm node, purge) flush first. Lost in
  // a crash: at most that period of heartbeats, which the nodes send again.
  bool heartbeat_write_behind = false;
  Seconds signup_ttl{3600};         // a sign-up link's validity (`users add`, `users reset`)
  Seconds default_login_ttl{12 * 3600};
  Seconds node_certificate_ttl{365 * 24 * 3600};
  Seconds admin_identity_ttl{365 * 24 * 3600};
  RateLimit::Options login_limit;   // failed logins per user and per source
  // The clock (tests fix it).
  std::function<Time()> clock = [] {
    return std::chrono::time_point_cast<Seconds>(std::chrono::system_clock::now());
  };
};

enum class CallerKind { anonymous, user, node, proxy, admin };
std::string_view caller_kind_name(CallerKind k);

// Who is calling, resolved from the peer's verified certificate and the
// store (a user's current roles).
struct Caller {
  CallerKind kind = CallerKind::anonymous;
  std::string name;      // user name, node uuid, kAdminName; empty when anonymous
  std::string address;   // the peer's "ip:port" (the client's, behind the proxy)
  std::string node_name; // nodes and proxies: the host name of the certificate
  bool forwarded = false;  // the proxy forwarded the request (address and identity are the client's)
  // A user acting through a browser session (cookie and CSRF header
  // checked): the session's id (the SHA-256 of its token, as stored).
  std::string web_session;
  std::optional<cluster::AccessChecker> access;  // users
  const cluster::AccessChecker& checker() const { return *access; }
};

// ---- Requests and replies ------------------------------------------------

struct FindReply {
  std::string server_version;
  std::string cluster_name;
  SecondFactor second_factor = SecondFactor::off;
  std::vector<std::string> proxy_public_addrs;
  std::string ca_pin;
};

struct StatusReply {
  std::string cluster_name;
  std::string server_version;
  std::string ca_pin;
};

struct CreateTokenRequest {
  std::vector<cluster::SystemRole> roles;
  Seconds ttl{1800};
};
struct CreatedToken {
  std::string secret;  // shown once
  std::string id;
  std::vector<cluster::SystemRole> roles;
  Time expires{};
};

struct JoinRequest {
  std::string token;
  cluster::SystemRole role = cluster::SystemRole::node;
  std::string node_name;
  std::vector<std::string> addresses;   // "host:port" it listens on; empty with a tunnel
  bool tunnel = false;
  cluster::Labels labels;
  std::string ssh_public_key;           // "ssh-ed25519 AAAA..." (its host key)
  std::string tls_public_key;           // SubjectPublicKeyInfo, DER (raw bytes)
};
struct JoinReply {
  std::string uuid;
  std::string ssh_host_certificate;     // "...-cert-v01@openssh.com AAAA..." line
  std::string tls_certificate_pem;
  std::vector<std::string> tls_ca_pems;
  std::string trusted_user_ca_keys;     // TrustedUserCAKeys lines
  std::string cluster_name;
};

struct HeartbeatRequest {
  std::string node_name;
  std::string address;                  // empty with a tunnel
  bool tunnel = false;
  cluster::Labels labels;
  std::optional<std::string> uuid;      // when sent, must be the certificate's
};
struct HeartbeatReply {
  Seconds interval{};
  Time expires{};
  std::string roles_revision;
};

struct RolesReply {
  std::vector<cluster::Role> roles;
  std::string revision;
};

struct AddUserRequest {
  std::string name;
  std::vector<std::string> roles;
  std::vector<std::string> logins;
  std::optional<Seconds> ttl;           // of the sign-up link; Options::signup_ttl when absent
};
struct SignupLink {
  cluster::User user;
  std::string token;                    // the secret, once
  std::string url;                      // https://<proxy>/web/invite/<token>
  Time expires{};
};

struct SignupRequest {
  std::string token;
  std::string password;
};
struct SignupReply {
  std::string user;
  std::optional<std::string> totp_secret_base32;  // when second_factor is otp
  std::optional<std::string> totp_uri;
};

struct LoginRequest {
  std::string user;
  std::string password;
  std::string totp_code;                // when second_factor is otp
  std::string ssh_public_key;           // "ssh-ed25519 AAAA..."
  std::string tls_public_key;           // SubjectPublicKeyInfo, DER (raw bytes)
  std::optional<Seconds> ttl;
};
struct LoginReply {
  std::string ssh_certificate;          // certificate line
  std::string tls_certificate_pem;
  std::vector<std::string> tls_ca_pems;
  std::string host_ca_known_hosts;      // "@cert-authority * ssh-ed25519 ..." lines
  std::vector<std::string> principals;
  KindSet recorded_kinds;
  Seconds ttl{};
  Time expires{};
};

// A browser's login on the web port (docs/api.md, "Browser sessions"):
// the password (and TOTP code) as for LoginRequest, no keys.
struct WebLoginRequest {
  std::string user;
  std::string password;
  std::string totp_code;
};
struct WebSession {
  std::string token;      // the cookie's value (shown once; only its hash is stored)
  std::string csrf;       // what every call with the cookie sends in X-Vigil-CSRF
  std::string user;
  std::vector<std::string> roles;
  Seconds ttl{};
  Time expires{};
};
// Live browser sessions kept per user; a login beyond it ends the oldest.
inline constexpr size_t kMaxWebSessionsPerUser = 16;

struct CreateResourcesRequest {
  std::string text;   // YAML or JSON, one or more documents
  bool force = false; // replace what exists (`vigilctl create -f`)
};
struct CreatedResource {
  std::string kind;   // "role" | "user"
  std::string name;
  bool replaced = false;
};

struct CasReply {
  std::vector<std::string> tls_ca_pems;
  std::string trusted_user_ca_keys;
  std::string host_ca_known_hosts;
  std::string trusted_host_ca_keys;     // the host CA's public key lines (the proxy's tunnel port)
};

class AuthService {
 public:
  // The store, CAs and audit emitter outlive the service.
  AuthService(cluster::ClusterStore& store, ca::ClusterCAs& cas, auditlog::Emitter& audit,
              Options options);

  const Options& options() const { return options_; }

  // Who the peer is. unauthenticated (audited) for a certificate of another
  // cluster, or a user that no longer exists.
  // Behind the proxy: when the peer carries forwarded headers
  // (X-Forwarded-For, X-Vigil-Forwarded-Certificate), they are honoured only
  // when the direct peer is a proxy of this cluster; the forwarded
  // certificate is then verified here again (CA, cluster, validity) and the
  // caller is its holder, at the forwarded address. From any other peer the
  // headers are refused (permission_denied, audited as access.denied).
  // The local admin identity is never taken through the proxy.
  Result<Caller> caller(const api::Peer& peer);

  FindReply find() const;
  Result<StatusReply> status(const Caller& c);

  Result<CreatedToken> create_token(const Caller& c, const CreateTokenRequest& r);
  Result<std::vector<cluster::Token>> list_tokens(const Caller& c);
  Result<void> remove_token(const Caller& c, std::string_view id);

  Result<JoinReply> join(const Caller& c, const JoinRequest& r);
  Result<HeartbeatReply> heartbeat(const Caller& c, const HeartbeatRequest& r);
  Result<RolesReply> roles(const Caller& c);
  Result<CasReply> cas(const Caller& c);
  Result<std::vector<cluster::Node>> list_nodes(const Caller& c);

  Result<SignupLink> add_user(const Caller& c, const AddUserRequest& r);
  Result<std::vector<cluster::User>> list_users(const Caller& c);
  Result<cluster::User> get_user(const Caller& c, std::string_view name);
  Result<void> remove_user(const Caller& c, std::string_view name);
  Result<SignupLink> reset_user(const Caller& c, std::string_view name);

  Result<SignupReply> signup(const Caller& c, const SignupRequest& r);
  Result<LoginReply> login(const Caller& c, const LoginRequest& r);
  // A browser session for the user: authenticated as login() (the same
  // failed-login limits, the same user.login events), valid as long as a
  // certificate login() would give (default TTL capped by the roles'
  // max_session_ttl). The token and CSRF token are stored hashed only.
  Result<WebSession> web_login(const Caller& c, const WebLoginRequest& r);
  // Ends the caller's browser session (logout); unauthenticated unless the
  // caller acts through one.
  Result<void> end_web_session(const Caller& c);

  Result<std::vector<CreatedResource>> create_resources(const Caller& c,
                                                        const CreateResourcesRequest& r);
  // kind: role | user | token | node; name empty: all of them.
  Result<std::string> get_resources(const Caller& c, std::string_view kind, std::string_view name,
                                    cluster::Format format);
  Result<void> remove_resource(const Caller& c, std::string_view kind, std::string_view name);

  // For the integrator, at start: the auth service's own TLS server
  // certificate (a node-kind identity named host_uuid, with its addresses).
  Result<ca::TlsCertificate> issue_server_certificate(std::string_view host_uuid,
                                                      std::string_view host_name,
                                                      const std::vector<std::string>& addresses,
                                                      std::string_view spki_der);
  // The local admin identity, into <data_dir>/admin (dir 0700): key.pem
  // (0600), cert.pem and ca.pem. Issued anew at every start.
  Result<void> write_admin_identity(const std::string& data_dir);
  // Removes expired tokens, nodes and sessions, and forgets old login
  // failures; call it periodically (every minute).
  Result<size_t> purge_expired();
  // Writes the heartbeats held in memory (heartbeat_write_behind) in one
  // transaction; returns how many. On a store error they stay held (unless
  // a newer heartbeat of the node came meanwhile) for the next flush.
  // Also re-reads the roles' revision (cached in memory, see below), so
  // that a role written by another process than this one is seen within
  // the flush period.
  Result<size_t> flush_heartbeats();
  size_t pending_heartbeats() const;
  // Another auth service on the same database wrote records of `kind`
  // ("*": anything may have changed, after a lost notification channel):
  // drops what this one holds in memory of them (the roles' revision, node
  // removals, which uuids are not proxies), so that their change is in
  // force here at once (pg::ChangeWatcher).
  void store_changed(std::string_view kind);
  // A heartbeat needs no read of the store: what it reads is held in
  // memory, each kept true by the writes of this service.
  //  - the roles' revision: computed once, dropped by every role change
  //    made here, re-read by flush_heartbeats();
  //  - which node uuids are not proxies (a proxy's record is made at its
  //    join, with a fresh uuid, and never removed; only "not a proxy" is
  //    held, so a stale entry can only give less);
  //  - each node's host key (certified at its join) and expiry: set at the
  //    join and each heartbeat, dropped by rm node and when purged.
  // How many store reads the heartbeats made (tests: none once known).
  uint64_t heartbeat_store_reads() const { return heartbeat_store_reads_.load(); }
  // How many user names and sources have failed logins remembered.
  size_t login_failure_keys() const { return limiter_.keys(); }
  // For routes served beside these (cluster_services): audits the refusal
  // of `action` to c as access.denied, as every refusal here is, and
  // returns `why` to answer with.
  Error refuse(const Caller& c, std::string_view action, Error why) {
    return deny(c, action, std::move(why));
  }
  // Audit events the audit log refused (each also logged as an error): a
  // request whose event guards what it hands out (a certificate, a token's
  // secret) failed with unavailable; a refusal or a change already made
  // kept its answer.
  uint64_t audit_failures() const { return audit_failures_.load(); }

 private:
  Time now() const { return options_.clock(); }
  // Refuses (and audits) unless c may do verb on resource.
  Result<void> require(const Caller& c, std::string_view resource, std::string_view verb,
                       std::string_view action);
  Error deny(const Caller& c, std::string_view action, Error why);
  Result<std::string> roles_revision();
  Result<cluster::NewToken> new_signup_token(const cluster::User& u, Seconds ttl);
  std::string signup_url(std::string_view secret) const;
  Error login_failure(const LoginRequest& r, const std::string& source, std::string reason,
                      Error shown);
  Result<void> check_user_roles(const std::vector<std::string>& roles);
  // The password (and TOTP) check of login() and web_login(): the user
  // and their resolved roles, or the audited, rate-counted refusal.
  struct Authenticated {
    cluster::User user;
    std::vector<cluster::Role> roles;
  };
  Result<Authenticated> authenticate(const LoginRequest& r, const std::string& source, Time t);
  // The caller a browser session stands for (cookie token and CSRF token
  // checked, the user's current roles read), or the audited refusal.
  Result<Caller> web_caller(const std::string& token, const std::optional<std::string>& csrf,
                            const std::string& address);
  Result<bool> is_proxy(std::string_view uuid);
  Result<Caller> identify(const ca::TlsIdentity& id, std::string address);

  cluster::ClusterStore& store_;
  ca::ClusterCAs& cas_;
  auditlog::Emitter& audit_;
  Options options_;
  RateLimit limiter_;
  std::atomic<uint64_t> audit_failures_{0};
  std::mutex flush_mu_;  // a flush and a node's removal, one at a time
  mutable std::mutex heartbeats_mu_;
  std::map<std::string, cluster::Node, std::less<>> pending_heartbeats_;  // by uuid

  // The in-memory answers of a heartbeat (flush_heartbeats() above).
  struct KnownNode {
    std::string host_key;
    Time expires{};
  };
  void invalidate_roles_revision();
  Result<void> refresh_roles_revision();
  Result<std::string> read_roles_revision();
  mutable std::mutex cache_mu_;
  std::optional<std::string> roles_revision_;      // cache_mu_
  uint64_t roles_generation_ = 0;                  // cache_mu_: bumped by each role change
  std::set<std::string, std::less<>> not_proxies_;  // cache_mu_
  std::map<std::string, KnownNode, std::less<>> known_nodes_;  // cache_mu_, by uuid
  // Nodes an administrator removed (uuid -> when): read from the store at
  // the first node call, then kept in step by each removal.
  Result<std::optional<int64_t>> node_removed_at(std::string_view uuid);
  std::optional<std::map<std::string, int64_t, std::less<>>> removals_;  // cache_mu_
  std::atomic<uint64_t> heartbeat_store_reads_{0};
};

}  // namespace vigil::authsvc
