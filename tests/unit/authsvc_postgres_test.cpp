// Two auth services on one PostgreSQL database (issue 12): what is written
// through one is in force on the other within a second, through the change
// notifications (pg::ChangeWatcher -> AuthService::store_changed), also
// where the other holds answers in memory (node removals, the roles'
// revision). The server: tests/support/postgres_server.hpp, port 31503.
#include "authsvc_fixture.hpp"
#include "pg/pg_cluster_store.hpp"
#include "../support/postgres_server.hpp"

namespace vigil::authsvc::test {
namespace {

class PostgresTwoAuthServices : public AuthFixture {
 protected:
  void SetUp() override {
    AuthFixture::SetUp();
    std::string error;
    auto* server = ::vigil::test::PostgresServer::shared(31503, &error);
    ASSERT_NE(server, nullptr) << error;
    static int counter = 0;
    uri_ = server->uri(server->create_database("twoauth_" + std::to_string(++counter)));
    Options o = service_->options();
    o.heartbeat_write_behind = true;
    service_.reset();
    store_.reset();
    store_.emplace(pg::open_postgres_cluster(uri_).value());  // service A (the fixture's)
    ASSERT_TRUE(store_->ensure_builtin_roles().ok());
    service_.emplace(*store_, *cas_, audit_, o);
    router_ = api::Router();
    add_routes(router_, *service_);
    store_b_.emplace(pg::open_postgres_cluster(uri_).value());  // service B
    service_b_.emplace(*store_b_, *cas_, audit_, o);
    add_routes(router_b_, *service_b_);
    auto w = pg::ChangeWatcher::open(uri_);
    ASSERT_TRUE(w.ok()) << w.error().message;
    watcher_ = std::move(*w);

    auto t = call("POST", "/v1/tokens", admin_peer(), {{"roles", {"node"}}, {"ttl", "5m"}});
    ASSERT_EQ(t.status, 201) << t.body;
    auto j = call("POST", "/v1/join", anonymous(),
                  {{"token", body(t)["token"]},
                   {"node_name", "web-1"},
                   {"addresses", {"10.1.2.3:3022"}},
                   {"ssh_public_key", keys_.ssh_line()},
                   {"tls_public_key", keys_.tls_b64()}});
    ASSERT_EQ(j.status, 200) << j.body;
    uuid_ = body(j)["uuid"];
  }
  api::Reply beat_b() {
    api::Request q;
    q.method = "POST";
    q.path = "/v1/nodes/heartbeat";
    q.peer = node_peer(uuid_);
    json b = {{"node_name", "web-1"}, {"address", "10.1.2.3:3022"}};
    q.body = b.dump();
    q.content_type = "application/json";
    q.json = b;
    return router_b_.dispatch(std::move(q));
  }
  // What the auth service's watcher thread does (services/cluster_services.cpp),
  // for up to a second.
  void deliver_changes_to_b() {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (std::chrono::steady_clock::now() < until) {
      auto kinds = watcher_->wait(std::chrono::milliseconds(100));
      ASSERT_TRUE(kinds.ok()) << kinds.error().message;
      for (const auto& k : *kinds) service_b_->store_changed(k);
    }
  }
  std::string uri_;
  std::optional<cluster::ClusterStore> store_b_;
  std::optional<AuthService> service_b_;
  api::Router router_b_;
  std::unique_ptr<pg::ChangeWatcher> watcher_;
  ClientKeys keys_;
  std::string uuid_;
};

TEST_F(PostgresTwoAuthServices, ANodeRemovedThroughOneIsRefusedByTheOtherWithinASecond) {
  // B answers the node (and learns the removals, none, into memory).
  auto first = beat_b();
  ASSERT_EQ(first.status, 200) << first.body;
  // Removed through A.
  auto rm = call("DELETE", "/v1/resources/node/" + uuid_, admin_peer());
  ASSERT_EQ(rm.status / 100, 2) << rm.body;
  now_ += 1;
  deliver_changes_to_b();
  auto again = beat_b();
  EXPECT_EQ(again.status, 401) << again.body;
  EXPECT_NE(again.body.find("removed from the cluster"), std::string::npos) << again.body;
}

TEST_F(PostgresTwoAuthServices, ARoleCreatedThroughOneChangesTheOthersRevisionWithinASecond) {
  auto before = beat_b();
  ASSERT_EQ(before.status, 200) << before.body;
  const std::string rev = body(before)["roles_revision"];
  create_role("kind: role\nversion: v8\nmetadata:\n  name: web\nspec:\n  allow:\n    logins: [www]\n");
  deliver_changes_to_b();  // no heartbeat flush on B meanwhile
  auto after = beat_b();
  ASSERT_EQ(after.status, 200) << after.body;
  EXPECT_NE(body(after)["roles_revision"], rev);
  // And the user made through A logs in through B at once (no cache).
  make_user("carol", {"access"}, {"carol"});
  EXPECT_TRUE(store_b_->get_user("carol").ok());
}

}  // namespace
}  // namespace vigil::authsvc::test
