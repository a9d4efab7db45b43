// Heartbeats held in memory and written together (Options::
// heartbeat_write_behind, what vigil cluster-services runs with): one
// transaction for many nodes instead of one synced write per heartbeat
// (docs/benchmarks-scale.md), without a reader of the service ever seeing
// an older heartbeat than the last one answered, a removed node coming
// back, or a live node purged.
#include "authsvc_fixture.hpp"

namespace vigil::authsvc::test {
namespace {

class HeldHeartbeats : public AuthFixture {
 protected:
  void SetUp() override {
    AuthFixture::SetUp();
    Options o = service_->options();
    o.heartbeat_write_behind = true;
    service_.reset();
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
  api::Reply beat(const std::string& uuid, const std::string& address, const std::string& env) {
    return call("POST", "/v1/nodes/heartbeat", node_peer(uuid),
                {{"node_name", "web-1"}, {"address", address}, {"labels", {{"env", env}}}});
  }
  ClientKeys keys_;
  std::string uuid_;
};

TEST_F(HeldHeartbeats, AreAnsweredAtOnceAndReachTheStoreAtTheNextFlush) {
  // The join itself is written at once.
  EXPECT_EQ(store_->get_node(uuid_)->labels.at("env"), "prod");
  now_ += 30;
  auto hb = beat(uuid_, "10.1.2.3:3022", "dev");
  ASSERT_EQ(hb.status, 200) << hb.body;
  EXPECT_EQ(body(hb)["interval_seconds"], 30);
  EXPECT_EQ(service_->pending_heartbeats(), 1u);
  EXPECT_EQ(store_->get_node(uuid_)->labels.at("env"), "prod");  // held
  ASSERT_EQ(service_->flush_heartbeats().value(), 1u);
  const cluster::Node n = store_->get_node(uuid_).value();
  EXPECT_EQ(n.labels.at("env"), "dev");
  EXPECT_EQ(n.expires, cluster::Time{cluster::Seconds{kStart + 30 + 90}});
  EXPECT_EQ(n.last_heartbeat, cluster::Time{cluster::Seconds{kStart + 30}});
  // The host key certified at the join is kept.
  EXPECT_EQ(n.host_key, keys_.ssh_line());
  EXPECT_EQ(service_->flush_heartbeats().value(), 0u);
}

TEST_F(HeldHeartbeats, ManyNodesGoInOneFlushAndTheLastHeartbeatOfEachWins) {
  for (int i = 0; i < 500; ++i) {
    const std::string uuid = "sim-" + std::to_string(i);
    ASSERT_EQ(beat(uuid, "10.0.0.1:3022", "a").status, 200);
    ASSERT_EQ(beat(uuid, "10.0.0.2:3022", "b").status, 200);
  }
  EXPECT_EQ(service_->pending_heartbeats(), 500u);
  ASSERT_EQ(service_->flush_heartbeats().value(), 500u);
  auto all = store_->list_nodes().value();
  EXPECT_EQ(all.size(), 501u);  // and web-1, joined
  for (const auto& n : all)
    if (n.uuid != uuid_) EXPECT_EQ(n.address, "10.0.0.2:3022") << n.uuid;
}

TEST_F(HeldHeartbeats, ReadersOfTheServiceSeeTheLastHeartbeatWithoutWaiting) {
  ASSERT_EQ(beat(uuid_, "10.9.9.9:3022", "dev").status, 200);
  auto listed = call("GET", "/v1/nodes", admin_peer());
  ASSERT_EQ(listed.status, 200) << listed.body;
  EXPECT_NE(listed.body.find("10.9.9.9:3022"), std::string::npos) << listed.body;
  auto got = service_->get_resources(caller_of(admin_peer()), "node", uuid_, cluster::Format::json);
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_NE(got->find("10.9.9.9:3022"), std::string::npos) << *got;
}

TEST_F(HeldHeartbeats, ARemovedNodeIsNotBroughtBackByAHeldHeartbeat) {
  ASSERT_EQ(beat(uuid_, "10.1.2.3:3022", "dev").status, 200);
  auto rm = call("DELETE", "/v1/resources/node/" + uuid_, admin_peer());
  ASSERT_EQ(rm.status / 100, 2) << rm.body;
  service_->flush_heartbeats().value();
  auto gone = store_->get_node(uuid_);
  ASSERT_FALSE(gone.ok()) << "the removed node was written back by its held heartbeat";
  EXPECT_EQ(gone.error().kind(), Errc::not_found);
}

TEST_F(HeldHeartbeats, ANodeThatHeartbeatsIsNotPurgedWhileItsHeartbeatIsHeld) {
  // Joined at kStart (expires kStart + 90); a heartbeat at +60 is held.
  now_ += 60;
  ASSERT_EQ(beat(uuid_, "10.1.2.3:3022", "prod").status, 200);
  now_ += 40;  // past the join's expiry, within the heartbeat's
  ASSERT_TRUE(service_->purge_expired().ok());
  ASSERT_TRUE(store_->get_node(uuid_).ok()) << "purged although it heartbeat 40 s ago";
  now_ += 91;  // silent since: gone
  ASSERT_TRUE(service_->purge_expired().ok());
  auto gone = store_->get_node(uuid_);
  ASSERT_FALSE(gone.ok()) << "silent for 91 s past its last heartbeat's expiry, still stored";
  EXPECT_EQ(gone.error().kind(), Errc::not_found);
}

}  // namespace
}  // namespace vigil::authsvc::test
