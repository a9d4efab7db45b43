// Heartbeats held in memory and written together (Options::
// heartbeat_write_behind, what vigil cluster-services runs with): one
// transaction for many nodes instead of one synced write per heartbeat
// (docs/benchmarks-scale.md), without a reader of the service ever seeing
// an older heartbeat than the last one answered, a removed node coming
// back, or a live node purged.
#include "authsvc_fixture.hpp"

namespace vigil::authsvc::test {
namespace {

// The back end under the store, counting the reads that reach it (each one
// takes the SQLite mutex, which the API's workers would wait on).
class CountingBackend : public cluster::Backend {
 public:
  CountingBackend(std::unique_ptr<cluster::Backend> inner, std::atomic<int>& reads)
      : inner_(std::move(inner)), reads_(reads) {}
  Result<cluster::Record> create(const cluster::Record& r) override { return inner_->create(r); }
  Result<cluster::Record> get(std::string_view kind, std::string_view name) override {
    ++reads_;
    return inner_->get(kind, name);
  }
  Result<std::vector<cluster::Record>> list(std::string_view kind) override {
    ++reads_;
    return inner_->list(kind);
  }
  Result<cluster::Record> update(const cluster::Record& r) override { return inner_->update(r); }
  Result<cluster::Record> put(const cluster::Record& r) override { return inner_->put(r); }
  Result<void> put_many(const std::vector<cluster::Record>& records) override { return inner_->put_many(records); }
  Result<void> remove(std::string_view kind, std::string_view name, std::optional<uint64_t> revision) override {
    return inner_->remove(kind, name, revision);
  }
  Result<size_t> purge_expired(std::string_view kind, int64_t now) override {
    return inner_->purge_expired(kind, now);
  }

 private:
  std::unique_ptr<cluster::Backend> inner_;
  std::atomic<int>& reads_;
};

class HeldHeartbeats : public AuthFixture {
 protected:
  void SetUp() override {
    AuthFixture::SetUp();
    Options o = service_->options();
    o.heartbeat_write_behind = true;
    service_.reset();
    store_.reset();
    store_.emplace(std::make_unique<CountingBackend>(
        cluster::open_sqlite(dir_.file("counted.db")).value(), reads_));
    ASSERT_TRUE(store_->ensure_builtin_roles().ok());
    service_.emplace(*store_, *cas_, audit_, o);
    router_ = api::Router();
    add_routes(router_, *service_);
    auto t = call("POST", "/v1/tokens", admin_peer(), {{"roles", {"node"}}, {"ttl", "5m"}});
    ASSERT_EQ(t.status, 201) << t.body;
    auto j = call("POST", "/v1/join", anonymous(),
                  {{"token", body(t)["token"]},
                   {"node_name", "web-1"},
                   {"addresses", {"10.1.2.3:3022"}},
                   {"labels", {{"env", "prod"}}},
                   {"ssh_public_key", keys_.ssh_line()},
                   {"tls_public_key", keys_.tls_b64()}});
    ASSERT_EQ(j.status, 200) << j.body;
    uuid_ = body(j)["uuid"];
  }
  // A heartbeat with a certificate whose validity began at `not_before`
  // (0: the join's, long before anything the test does).
  api::Reply beat(const std::string& uuid, const std::string& address, const std::string& env,
                  int64_t not_before = 0) {
    return call("POST", "/v1/nodes/heartbeat", node_peer(uuid, "alpha", not_before),
                {{"node_name", "web-1"}, {"address", address}, {"labels", {{"env", env}}}});
  }
  ClientKeys keys_;
  std::string uuid_;
  std::atomic<int> reads_{0};
};

// At 10,000 nodes, three store reads a heartbeat (the node, whether it is a
// proxy, the roles for their revision) held the two API workers on the
// SQLite mutex: a heartbeat of a node this service knows reads nothing.
TEST_F(HeldHeartbeats, AHeartbeatOfAKnownNodeReadsNothingFromTheStore) {
  ASSERT_EQ(beat(uuid_, "10.1.2.3:3022", "dev").status, 200);  // the first may learn what it needs
  auto rev = body(beat(uuid_, "10.1.2.3:3022", "dev"))["roles_revision"];
  ASSERT_TRUE(service_->flush_heartbeats().ok());  // flushed: nothing held for the node
  const int before = reads_.load();
  for (int i = 0; i < 20; ++i) {
    now_ += 3;
    auto hb = beat(uuid_, "10.1.2.3:3022", i % 2 ? "dev" : "prod");
    ASSERT_EQ(hb.status, 200) << hb.body;
    EXPECT_EQ(body(hb)["roles_revision"], rev);
    if (i == 10) ASSERT_TRUE(service_->flush_heartbeats().ok());
  }
  EXPECT_EQ(reads_.load() - before, 1) << "only the flush's re-read of the roles' revision";
  ASSERT_TRUE(service_->flush_heartbeats().ok());
  const cluster::Node n = store_->get_node(uuid_).value();
  EXPECT_EQ(n.host_key, keys_.ssh_line());  // the join's host key, from memory
  EXPECT_EQ(n.labels.at("env"), "dev");
}

// What the memory holds stays true: a role changed here shows at once, one
// written past this service (another process on the same store) by the next
// flush.
TEST_F(HeldHeartbeats, TheRolesRevisionHeldInMemoryFollowsEveryRoleChange) {
  const std::string rev = body(beat(uuid_, "10.1.2.3:3022", "dev"))["roles_revision"];
  create_role("kind: role\nversion: v8\nmetadata:\n  name: web\nspec:\n  allow:\n    logins: [www]\n");
  const std::string rev2 = body(beat(uuid_, "10.1.2.3:3022", "dev"))["roles_revision"];
  EXPECT_NE(rev2, rev) << "a role made through the service, not in the revision";
  auto rm = call("DELETE", "/v1/resources/role/web", admin_peer());
  ASSERT_EQ(rm.status / 100, 2) << rm.body;
  EXPECT_EQ(body(beat(uuid_, "10.1.2.3:3022", "dev"))["roles_revision"], rev) << "a deleted role still counted";
  cluster::Role other;
  other.name = "written-past-the-service";
  ASSERT_TRUE(store_->create_role(other).ok());
  EXPECT_EQ(body(beat(uuid_, "10.1.2.3:3022", "dev"))["roles_revision"], rev);  // until the flush
  ASSERT_TRUE(service_->flush_heartbeats().ok());
  EXPECT_NE(body(beat(uuid_, "10.1.2.3:3022", "dev"))["roles_revision"], rev);
}

// A node removed (rm node) or purged (silent past its expiry) and then
// heartbeating again is what the store says it is, without the host key of
// its join, as before the memory: the memory forgot it too.
TEST_F(HeldHeartbeats, ARemovedNodesHostKeyIsNotKeptInMemory) {
  ASSERT_EQ(beat(uuid_, "10.1.2.3:3022", "dev").status, 200);
  auto rm = call("DELETE", "/v1/resources/node/" + uuid_, admin_peer());
  ASSERT_EQ(rm.status / 100, 2) << rm.body;
  now_ += 2;
  // With a certificate issued after the removal (the old one is refused:
  // the next test).
  ASSERT_EQ(beat(uuid_, "10.1.2.3:3022", "dev", now_.load()).status, 200);
  ASSERT_TRUE(service_->flush_heartbeats().ok());
  EXPECT_EQ(store_->get_node(uuid_)->host_key, "") << "the removed node's host key came back from memory";
}

// `vigilctl rm node/UUID` revokes what the node holds: before, a removed
// node heartbeat itself back into the list (and users were routed to it)
// until its certificate expired, a year later. Its old certificate is
// refused and audited, also by a service started again; a certificate
// issued after the removal (a join with a new token) is not.
TEST_F(HeldHeartbeats, ARemovedNodesCertificateIsRefusedAndAudited) {
  ASSERT_EQ(beat(uuid_, "10.1.2.3:3022", "dev").status, 200);
  auto rm = call("DELETE", "/v1/resources/node/" + uuid_, admin_peer());
  ASSERT_EQ(rm.status / 100, 2) << rm.body;
  now_ += 30;
  auto again = beat(uuid_, "10.1.2.3:3022", "dev");
  EXPECT_EQ(again.status, 401) << again.body;
  EXPECT_NE(again.body.find("removed from the cluster"), std::string::npos) << again.body;
  json denied = audit_.last("access.denied");
  EXPECT_EQ(denied["user"], uuid_);
  EXPECT_EQ(denied["caller"], "node");
  ASSERT_TRUE(service_->flush_heartbeats().ok());
  EXPECT_FALSE(store_->get_node(uuid_).ok()) << "the removed node heartbeat itself back";
  // Any other call of the node too, and after a restart of the service.
  Options o = service_->options();
  service_.reset();
  service_.emplace(*store_, *cas_, audit_, o);
  router_ = api::Router();
  add_routes(router_, *service_);
  EXPECT_EQ(beat(uuid_, "10.1.2.3:3022", "dev").status, 401) << "forgotten by a new service";
  EXPECT_EQ(call("GET", "/v1/cas", node_peer(uuid_)).status, 401);
  // Joined again: a certificate issued now.
  EXPECT_EQ(beat(uuid_, "10.1.2.3:3022", "dev", now_.load()).status, 200);
}

TEST_F(HeldHeartbeats, APurgedNodesHostKeyIsNotKeptInMemory) {
  ASSERT_EQ(beat(uuid_, "10.1.2.3:3022", "dev").status, 200);
  now_ += 200;  // silent past the heartbeat's expiry
  ASSERT_TRUE(service_->purge_expired().ok());
  ASSERT_FALSE(store_->get_node(uuid_).ok());
  ASSERT_EQ(beat(uuid_, "10.1.2.3:3022", "dev").status, 200);
  ASSERT_TRUE(service_->flush_heartbeats().ok());
  EXPECT_EQ(store_->get_node(uuid_)->host_key, "") << "the purged node's host key came back from memory";
}

}  // namespace
}  // namespace vigil::authsvc::test
