// Node to auth service, end to end without a network: Outbox -> Forwarder
// -> (the wire format) -> Inbox -> audit store. Exactly once and in order
// while the delivery fails at random, acknowledgements are lost after the
// inbox stored a batch, and either side restarts.
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../support/relay_events.hpp"
#include "../support/temp_dir.hpp"
#include "../support/wait.hpp"
#include "auditlog/memory_store.hpp"
#include "relay/forwarder.hpp"
#include "relay/inbox.hpp"
#include "relay/spooling_store.hpp"
#include "relay/wire.hpp"

namespace vigil::relay {
namespace {

using namespace std::chrono_literals;
using test::numbered_event;

std::vector<std::string> all_lines(auditlog::AuditStore& store) {
  std::vector<std::string> out;
  auditlog::Query q;
  q.limit = 1000;
  for (;;) {
    auto page = store.search(q);
    EXPECT_TRUE(page.ok());
    if (!page.ok()) break;
    out.insert(out.end(), page->lines.begin(), page->lines.end());
    if (page->next.empty()) break;
    q.after = page->next;
  }
  return out;
}

// The auth service as the node sees it: the batch crosses the wire format,
// and the link fails before the inbox (nothing stored) or after it (stored,
// the acknowledgement lost) at random, or always while it is "down".
class FlakyAuth {
 public:
  FlakyAuth(auditlog::AuditStore& store, std::string state_dir, uint64_t seed)
      : store_(store), state_dir_(std::move(state_dir)), rng_(seed) {
    restart();
  }
  // A new Inbox on the same store and checkpoints: the auth service restarted.
  void restart() {
    std::lock_guard lk(mu_);
    inbox_.reset();
    auto in = Inbox::open(store_, InboxOptions{state_dir_, {}});
    ASSERT_TRUE(in.ok()) << in.error().message;
    inbox_ = std::move(*in);
  }
  void set_down(bool down) { down_ = down; }
  void set_failure_rate(double before, double after) {
    std::lock_guard lk(mu_);
    fail_before_ = before;
    fail_after_ = after;
  }
  DeliverFn deliver() {
    return [this](const Batch& b) -> Result<uint64_t> {
      std::lock_guard lk(mu_);
      ++calls_;
      if (down_) return Error::of(Errc::unavailable, "connection refused (auth service down)");
      std::uniform_real_distribution<double> u(0, 1);
      if (u(rng_) < fail_before_) return Error::of(Errc::unavailable, "connection reset");
      auto parsed = batch_from_json(to_json(b));
      if (!parsed.ok()) return parsed.error();
      auto acked = inbox_->accept(Caller{"node-1", "host-1"}, *parsed);
      if (!acked.ok()) return acked.error();
      if (u(rng_) < fail_after_) {
        ++lost_acks_;
        return Error::of(Errc::deadline_exceeded, "the answer did not arrive");
      }
      auto ack = ack_from_json(to_json(Ack{*acked}));
      if (!ack.ok()) return ack.error();
      return ack->acked_seq;
    };
  }
  uint64_t lost_acks() const { return lost_acks_; }
  uint64_t calls() {
    std::lock_guard lk(mu_);
    return calls_;
  }

 private:
  auditlog::AuditStore& store_;
  std::string state_dir_;
  std::mutex mu_;
  std::mt19937_64 rng_;
  std::unique_ptr<Inbox> inbox_;
  std::atomic<bool> down_{false};
  double fail_before_ = 0, fail_after_ = 0;
  std::atomic<uint64_t> lost_acks_{0};
  uint64_t calls_ = 0;
};

class DeliveryTest : public ::testing::Test {
 protected:
  DeliveryTest()
      : storage_(std::make_shared<auditlog::MemoryAuditStorage>()),
        store_(auditlog::MemoryAuditStore::open(storage_)),
        auth_(*store_, dir_.path() + "/auth/relay/events", 42) {}
  std::unique_ptr<Outbox> open_outbox(uint64_t max_bytes = 1ull << 30) {
    OutboxOptions o;
    o.data_dir = dir_.path() + "/node";
    o.server_id = "node-1";
    o.server_hostname = "host-1";
    o.segment_bytes = 4096;  // many segments
    o.max_spool_bytes = max_bytes;
    o.flush_interval = 10ms;
    auto box = Outbox::open(o);
    EXPECT_TRUE(box.ok()) << (box.ok() ? "" : box.error().message);
    return box.ok() ? std::move(*box) : nullptr;
  }
  static ForwarderOptions fast() {
    ForwarderOptions f;
    f.max_batch_events = 17;
    f.max_batch_bytes = 2048;
    f.backoff_initial = 1ms;
    f.backoff_max = 4ms;
    f.idle_wait = 20ms;
    f.jitter_seed = 7;
    return f;
  }
  static void expect_delivered(Forwarder& fwd) {
    auto r = fwd.flush_wait(std::chrono::steady_clock::now() + 60s);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
  // Every stored event once, relay_seq 1..N in order, and each writer's
  // events in the order it wrote them.
  void expect_exactly_once(const std::set<uint64_t>& sent) {
    // search() orders by the events' time; the node's order is relay_seq.
    std::map<uint64_t, nlohmann::json> by_seq;
    for (const auto& l : all_lines(*store_)) {
      auto j = nlohmann::json::parse(l);
      ASSERT_EQ(j["server_id"], "node-1");
      const uint64_t seq = j["relay_seq"].get<uint64_t>();
      ASSERT_TRUE(by_seq.emplace(seq, j).second) << "relay_seq " << seq << " stored twice";
    }
    ASSERT_FALSE(by_seq.empty());
    EXPECT_EQ(by_seq.begin()->first, 1u);
    EXPECT_EQ(by_seq.rbegin()->first, by_seq.size()) << "a gap in relay_seq";
    std::map<uint64_t, int> seen;
    std::map<uint64_t, uint64_t> next_of_writer;
    for (const auto& [seq, j] : by_seq) {
      if (j["event"] != "test.event") continue;
      const uint64_t n = j["n"].get<uint64_t>();
      ++seen[n];
      const uint64_t writer = n / 100000;
      EXPECT_LE(next_of_writer[writer], n) << "writer " << writer << " out of order at " << n;
      next_of_writer[writer] = n + 1;
    }
    for (uint64_t n : sent) EXPECT_EQ(seen[n], 1) << "event " << n;
    EXPECT_EQ(seen.size(), sent.size());
  }

  test::TempDir dir_;
  std::shared_ptr<auditlog::MemoryAuditStorage> storage_;
  std::unique_ptr<auditlog::MemoryAuditStore> store_;
  FlakyAuth auth_;
};

// Four writers (sessions) append through the node's audit sink while the
// forwarder sends; the link fails at random before and after the inbox;
// the auth service restarts, then the node.
TEST_F(DeliveryTest, ExactlyOnceInOrderThroughFailuresAndRestartsOfBothSides) {
  auth_.set_failure_rate(0.2, 0.2);
  std::set<uint64_t> sent;
  std::mutex sent_mu;
  auto write = [&](SpoolingStore& sink, uint64_t writer, uint64_t from, uint64_t to) {
    for (uint64_t i = from; i < to; ++i) {
      const uint64_t n = writer * 100000 + i;
      ASSERT_TRUE(sink.emit(numbered_event(n)).ok());
      std::lock_guard lk(sent_mu);
      sent.insert(n);
    }
  };
  {
    auto box = open_outbox();
    SpoolingStore sink(*box);
    Forwarder fwd(*box, auth_.deliver(), fast());
    std::vector<std::thread> writers;
    for (uint64_t w = 1; w <= 4; ++w) writers.emplace_back(write, std::ref(sink), w, 0, 150);
    for (auto& t : writers) t.join();
    auth_.restart();
    writers.clear();
    for (uint64_t w = 1; w <= 4; ++w) writers.emplace_back(write, std::ref(sink), w, 150, 300);
    for (auto& t : writers) t.join();
    // The node stops before everything is delivered (sometimes mid-batch).
  }
  {
    auto box = open_outbox();
    SpoolingStore sink(*box);
    Forwarder fwd(*box, auth_.deliver(), fast());
    write(sink, 5, 0, 100);
    expect_delivered(fwd);
    auto s = fwd.stats();
    EXPECT_GT(s.retries, 0u);
    EXPECT_EQ(s.lost, 0u);
  }
  EXPECT_GT(auth_.lost_acks(), 0u) << "the test did not lose an acknowledgement";
  expect_exactly_once(sent);
}

// The test: the auth service is stopped during a session and
// restarted; no event lost, none doubled.
TEST_F(DeliveryTest, AuthServiceStoppedDuringASessionAndRestarted) {
  auto box = open_outbox();
  SpoolingStore sink(*box);
  Forwarder fwd(*box, auth_.deliver(), fast());
  for (uint64_t i = 1; i <= 50; ++i) ASSERT_TRUE(sink.emit(numbered_event(i)).ok());
  expect_delivered(fwd);
  auth_.set_down(true);
  for (uint64_t i = 51; i <= 120; ++i)
    ASSERT_TRUE(sink.emit(numbered_event(i), auditlog::Durability::sync).ok());
  const uint64_t calls = auth_.calls();
  ASSERT_TRUE(vigil::testing::eventually([&] { return auth_.calls() > calls + 3; }));
  EXPECT_FALSE(fwd.flush_wait(std::chrono::steady_clock::now() + 50ms).ok());
  EXPECT_GT(box->stats().spool_bytes, 0u);
  auth_.restart();
  auth_.set_down(false);
  expect_delivered(fwd);
  std::set<uint64_t> want;
  for (uint64_t i = 1; i <= 120; ++i) want.insert(i);
  expect_exactly_once(want);
  EXPECT_GT(fwd.stats().retries, 0u);
  EXPECT_EQ(box->stats().spool_bytes, 0u) << "delivered events stay in the spool";
}

TEST_F(DeliveryTest, PermanentRefusalStopsDeliveryButNotSpooling) {
  auto box = open_outbox();
  std::atomic<bool> revoked{true};
  auto real = auth_.deliver();
  Forwarder fwd(
      *box,
      [&](const Batch& b) -> Result<uint64_t> {
        if (revoked) return Error::of(Errc::unauthenticated, "certificate revoked");
        return real(b);
      },
      fast());
  ASSERT_TRUE(box->append(numbered_event(1)).ok());
  auto r = fwd.flush_wait(std::chrono::steady_clock::now() + 60s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::unauthenticated);
  EXPECT_TRUE(fwd.stats().refused);
  EXPECT_EQ(fwd.stats().retries, 0u) << "a refusal is not retried";
  ASSERT_TRUE(box->append(numbered_event(2)).ok()) << "spooling goes on";
  revoked = false;
  fwd.resume();
  expect_delivered(fwd);
  expect_exactly_once({1, 2});
}

TEST_F(DeliveryTest, AnAcknowledgementBeyondWhatWasSentIsARefusal) {
  auto box = open_outbox();
  Forwarder fwd(*box, [](const Batch& b) -> Result<uint64_t> { return b.last_seq() + 5; }, fast());
  ASSERT_TRUE(box->append(numbered_event(1)).ok());
  auto r = fwd.flush_wait(std::chrono::steady_clock::now() + 60s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::failed_precondition);
  EXPECT_EQ(box->acked(), 0u);
}

TEST_F(DeliveryTest, BatchesAreBounded) {
  auto box = open_outbox();
  std::mutex mu;
  std::vector<size_t> sizes;
  auto real = auth_.deliver();
  Forwarder fwd(
      *box,
      [&](const Batch& b) -> Result<uint64_t> {
        {
          std::lock_guard lk(mu);
          sizes.push_back(b.events.size());
          EXPECT_LE(b.event_bytes(), 2048u);
        }
        return real(b);
      },
      fast());
  for (uint64_t i = 1; i <= 200; ++i) ASSERT_TRUE(box->append(numbered_event(i)).ok());
  expect_delivered(fwd);
  std::lock_guard lk(mu);
  for (size_t s : sizes) EXPECT_LE(s, 17u);
  EXPECT_GE(sizes.size(), 200u / 17);
}

TEST_F(DeliveryTest, NodeSearchSaysWhereTheLogIs) {
  auto box = open_outbox();
  SpoolingStore sink(*box);
  auto r = sink.search(auditlog::Query{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::failed_precondition);
  EXPECT_NE(r.error().message.find("auth service"), std::string::npos);
}

}  // namespace
}  // namespace vigil::relay
