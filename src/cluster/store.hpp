// Where the cluster's state is kept. Two layers:
// - Backend: records (kind, name, revision, expiry, data) with create, get,
//   list, compare-and-swap update and delete, upsert, purge of the expired.
//   SQLite (sqlite_store.hpp) is the first; a PostgreSQL one runs the same
//   contract tests (tests/unit/cluster_store_test.cpp).
// - ClusterStore: the typed API (users, roles, tokens, nodes, sessions in
//   progress) on any Backend, with the encoding of each resource.
// Errors are typed: not_found, already_exists, failed_precondition (the
// record changed since it was read: read it again and retry), data_loss
// (the database is damaged or not Vigil's), unavailable (locked too long).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cluster/resources.hpp"
#include "common/result.hpp"

namespace vigil::cluster {

struct Record {
  std::string kind;
  std::string name;
  uint64_t revision = 0;            // 1 when created, +1 on every change
  std::optional<int64_t> expires;   // unix seconds; purge_expired removes it after
  std::string data;                 // the resource's stored JSON
  bool operator==(const Record&) const = default;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // already_exists when (kind, name) is taken. Returns it with revision 1.
  virtual Result<Record> create(const Record& r) = 0;
  virtual Result<Record> get(std::string_view kind, std::string_view name) = 0;
  // Sorted by name.
  virtual Result<std::vector<Record>> list(std::string_view kind) = 0;
  // Only when the stored revision is r.revision (else failed_precondition;
  // not_found when gone). Returns it with its new revision.
  virtual Result<Record> update(const Record& r) = 0;
  // Create or replace whatever is there (heartbeats: the last one wins).
  virtual Result<Record> put(const Record& r) = 0;
  // put() of each record, all or none (one transaction: a SQLite back end
  // syncs to disk once for all of them). This default is for back ends
  // whose put() is cheap: one put() after another, not atomic.
  virtual Result<void> put_many(const std::vector<Record>& records) {
    for (const auto& r : records)
      if (auto p = put(r); !p) return p.error();
    return {};
  }
  // With a revision: only when it is still that one (a one-time token
  // consumed by exactly one caller). not_found when absent.
  virtual Result<void> remove(std::string_view kind, std::string_view name,
                              std::optional<uint64_t> revision = std::nullopt) = 0;
  // Removes the records of kind whose expiry is at or before now.
  virtual Result<size_t> purge_expired(std::string_view kind, int64_t now) = 0;
};

class ClusterStore {
 public:
  explicit ClusterStore(std::unique_ptr<Backend> backend) : backend_(std::move(backend)) {}

  Result<User> create_user(const User& u);
  Result<User> get_user(std::string_view name);
  Result<std::vector<User>> list_users();
  Result<User> update_user(const User& u);  // compare-and-swap on u.revision
  Result<void> delete_user(std::string_view name);

  Result<Role> create_role(const Role& r);
  Result<Role> get_role(std::string_view name);
  Result<std::vector<Role>> list_roles();
  Result<Role> update_role(const Role& r);
  Result<void> delete_role(std::string_view name);
  // Creates the built-in roles that are missing (keeps edited ones).
  Result<void> ensure_builtin_roles();

  // Tokens are keyed by their hash.
  Result<Token> create_token(const Token& t);
  Result<Token> get_token(std::string_view hash);
  Result<std::vector<Token>> list_tokens();
  Result<void> delete_token(std::string_view hash, std::optional<uint64_t> revision = std::nullopt);

  // Nodes are keyed by uuid; upsert_node is the heartbeat.
  Result<Node> upsert_node(const Node& n);
  // Many heartbeats in one write (Backend::put_many).
  Result<void> upsert_nodes(const std::vector<Node>& nodes);
  Result<Node> get_node(std::string_view uuid);
  Result<std::vector<Node>> list_nodes();
  Result<void> delete_node(std::string_view uuid);
  // A node an administrator removed: the certificates issued to its uuid
  // before `at` (unix seconds) are not honoured any more. Kept until
  // `expires`, when every such certificate has expired anyway. A node that
  // joins again with a new token gets a certificate issued after `at`.
  Result<void> put_node_removal(std::string_view uuid, int64_t at, int64_t expires);
  // uuid -> when it was removed.
  Result<std::vector<std::pair<std::string, int64_t>>> list_node_removals();

  Result<SessionTracker> create_session(const SessionTracker& s);
  Result<SessionTracker> get_session(std::string_view sid);
  Result<std::vector<SessionTracker>> list_sessions();
  Result<SessionTracker> update_session(const SessionTracker& s);
  Result<void> delete_session(std::string_view sid);

  // Removes expired tokens, nodes and sessions; how many.
  Result<size_t> purge_expired(Time now);

  Backend& backend() { return *backend_; }

 private:
  std::unique_ptr<Backend> backend_;
};

}  // namespace vigil::cluster
