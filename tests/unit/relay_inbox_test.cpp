// The auth side's ingest of events (relay/inbox.hpp): exactly once and in
// order per node, the node's identity from the caller, a crash between the
// store's append and the checkpoint.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../support/relay_events.hpp"
#include "../support/temp_dir.hpp"
#include "auditlog/file_log.hpp"
#include "auditlog/memory_store.hpp"
#include "relay/inbox.hpp"

namespace vigil::relay {
namespace {

using test::numbered_event;

Batch batch_of(uint64_t first, uint64_t last, const std::string& server_id = "") {
  Batch b;
  b.first_seq = first;
  for (uint64_t i = first; i <= last; ++i) {
    std::string line = numbered_event(i, server_id);
    line.pop_back();
    b.events.push_back(line);
  }
  return b;
}

std::vector<std::string> all_lines(auditlog::AuditStore& store) {
  std::vector<std::string> out;
  auditlog::Query q;
  q.limit = 1000;
  for (;;) {
    auto page = store.search(q);
    EXPECT_TRUE(page.ok()) << (page.ok() ? "" : page.error().message);
    if (!page.ok()) break;
    out.insert(out.end(), page->lines.begin(), page->lines.end());
    if (page->next.empty()) break;
    q.after = page->next;
  }
  return out;
}

std::vector<uint64_t> range(uint64_t a, uint64_t b) {
  std::vector<uint64_t> v;
  for (uint64_t i = a; i <= b; ++i) v.push_back(i);
  return v;
}

class InboxTest : public ::testing::Test {
 protected:
  InboxTest() : storage_(std::make_shared<auditlog::MemoryAuditStorage>()) {
    store_ = auditlog::MemoryAuditStore::open(storage_);
  }
  std::unique_ptr<Inbox> open() {
    auto in = Inbox::open(*store_, InboxOptions{dir_.path() + "/relay/events", {}});
    EXPECT_TRUE(in.ok()) << (in.ok() ? "" : in.error().message);
    return in.ok() ? std::move(*in) : nullptr;
  }
  const Caller node1_{"node-1", "host-1"};
  test::TempDir dir_;
  std::shared_ptr<auditlog::MemoryAuditStorage> storage_;
  std::unique_ptr<auditlog::MemoryAuditStore> store_;
};

TEST_F(InboxTest, StoresInOrderAndSkipsWhatItHoldsAlready) {
  auto in = open();
  auto r = in->accept(node1_, batch_of(1, 5));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, 5u);
  // The ack was lost: the node sends 1..5 again, then 3..8.
  r = in->accept(node1_, batch_of(1, 5));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 5u);
  r = in->accept(node1_, batch_of(3, 8));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 8u);
  EXPECT_EQ(test::numbers_of(all_lines(*store_)), range(1, 8));
  // The auth service restarts: it still knows.
  in = open();
  r = in->accept(node1_, batch_of(8, 9));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 9u);
  EXPECT_EQ(test::numbers_of(all_lines(*store_)), range(1, 9));
}

TEST_F(InboxTest, RefusesAGapAndSaysWhereToResend) {
  auto in = open();
  ASSERT_TRUE(in->accept(node1_, batch_of(1, 3)).ok());
  auto r = in->accept(node1_, batch_of(5, 6));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::failed_precondition);
  EXPECT_NE(r.error().message.find("resend from 4"), std::string::npos) << r.error().message;
  EXPECT_EQ(test::numbers_of(all_lines(*store_)), range(1, 3));
}

TEST_F(InboxTest, SetsTheCallersIdentityAndTheSequenceNumber) {
  auto in = open();
  Batch b = batch_of(1, 1);
  b.events[0] =
      R"({"event":"session.start","relay_seq":999,"server_hostname":"forged-host","time":"2026-11-28T03:00:00Z"})";
  ASSERT_TRUE(in->accept(node1_, b).ok());
  auto lines = all_lines(*store_);
  ASSERT_EQ(lines.size(), 1u);
  auto j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j["server_id"], "node-1");
  EXPECT_EQ(j["server_hostname"], "host-1");
  EXPECT_EQ(j["relay_seq"], 1);
  EXPECT_EQ(j["event"], "session.start");
}

// A node tries to write events as another node: in an event, and in the
// batch's own server_id. Both refused whole; nothing stored.
TEST_F(InboxTest, RefusesEventsOfAnotherNode) {
  auto in = open();
  Batch b = batch_of(1, 3);
  b.events[1] = R"({"event":"session.start","server_id":"node-2","time":"2026-11-28T03:00:00Z"})";
  auto r = in->accept(node1_, b);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::permission_denied);
  EXPECT_NE(r.error().message.find("events[1]"), std::string::npos) << r.error().message;
  Batch other = batch_of(1, 1);
  other.server_id = "node-2";
  r = in->accept(node1_, other);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::permission_denied);
  // A server_id that is not a string is no way around it either.
  Batch typed = batch_of(1, 1);
  typed.events[0] = R"({"event":"x","server_id":["node-1"],"time":"2026-11-28T03:00:00Z"})";
  r = in->accept(node1_, typed);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::permission_denied);
  EXPECT_TRUE(all_lines(*store_).empty());
  auto last = in->last_seq("node-1");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, 0u);
  // The node's own server_id is fine.
  ASSERT_TRUE(in->accept(node1_, batch_of(1, 2, "node-1")).ok());
}

TEST_F(InboxTest, RefusesEventsThatAreNotEvents) {
  auto in = open();
  const std::vector<std::string> bad = {
      "not json", "[1,2]", R"({"time":"2026-11-28T03:00:00Z"})",
      R"({"event":"x"})", R"({"event":"x","time":"yesterday"})",
      R"({"event":"x","time":"2026-11-28T03:00:00Z","deep":)" + std::string(100, '[') +
          std::string(100, ']') + "}",
  };
  for (const auto& e : bad) {
    Batch b = batch_of(1, 1);
    b.events[0] = e;
    auto r = in->accept(node1_, b);
    ASSERT_FALSE(r.ok()) << e;
    EXPECT_EQ(r.error().kind(), Errc::invalid_argument) << e;
  }
  auto r = in->accept(Caller{"", "h"}, batch_of(1, 1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::unauthenticated);
  r = in->accept(Caller{"../x", "h"}, batch_of(1, 1));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(all_lines(*store_).empty());
}

TEST_F(InboxTest, NodesHaveTheirOwnSequences) {
  auto in = open();
  const Caller node2{"node-2", "host-2"};
  ASSERT_TRUE(in->accept(node1_, batch_of(1, 3)).ok());
  ASSERT_TRUE(in->accept(node2, batch_of(1, 2)).ok());
  EXPECT_EQ(in->last_seq("node-1").value(), 3u);
  EXPECT_EQ(in->last_seq("node-2").value(), 2u);
  EXPECT_EQ(all_lines(*store_).size(), 5u);
}

// The auth service is killed (SIGKILL) after the store took a batch and
// before the checkpoint said so. The node, never acknowledged, sends the
// batch again: it is stored once.
class InboxCrashTest : public ::testing::Test {
 protected:
  auditlog::FileLogOptions log_options() const {
    auditlog::FileLogOptions o;
    o.data_dir = dir_.path();
    o.server_uuid = "auth-1";
    o.flush_interval = std::chrono::milliseconds(20);
    return o;
  }
  std::string state_dir() const { return dir_.path() + "/relay/events"; }
  void run_child(const std::function<void()>& body) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      body();
      _exit(4);  // not reached: killed
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  }
  test::TempDir dir_;
};

TEST_F(InboxCrashTest, KilledBetweenAppendAndCheckpointStoresOnce) {
  {
    auto log = auditlog::FileLog::open(log_options());
    ASSERT_TRUE(log.ok());
    auto in = Inbox::open(**log, InboxOptions{state_dir(), {}});
    ASSERT_TRUE(in.ok());
    ASSERT_TRUE((*in)->accept(Caller{"node-1", "h"}, batch_of(1, 4)).ok());
  }
  run_child([&] {
    auto log = auditlog::FileLog::open(log_options());
    if (!log.ok()) _exit(3);
    auto in = Inbox::open(**log, InboxOptions{state_dir(), [] { raise(SIGKILL); }});
    if (!in.ok()) _exit(3);
    (void)(*in)->accept(Caller{"node-1", "h"}, batch_of(5, 9));
  });
  auto log = auditlog::FileLog::open(log_options());
  ASSERT_TRUE(log.ok());
  auto in = Inbox::open(**log, InboxOptions{state_dir(), {}});
  ASSERT_TRUE(in.ok()) << in.error().message;
  EXPECT_EQ((*in)->last_seq("node-1").value(), 9u);
  auto r = (*in)->accept(Caller{"node-1", "h"}, batch_of(5, 10));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, 10u);
  ASSERT_TRUE((*log)->flush().ok());
  EXPECT_EQ(test::numbers_of(all_lines(**log)), range(1, 10));
}

// The same crash with events whose time is years before the day the auth
// service writes them (a node's clock, or events spooled long ago): the
// recovery still finds them, in the day file of the writer's clock.
TEST_F(InboxCrashTest, KilledBetweenAppendAndCheckpointWithOldEventTimesStoresOnce) {
  auto old_batch = [](uint64_t first, uint64_t last) {
    Batch b = batch_of(first, last);
    for (auto& e : b.events) {
      const size_t at = e.find("2026-11-28");
      e.replace(at, 10, "2019-03-01");
    }
    return b;
  };
  run_child([&] {
    auto log = auditlog::FileLog::open(log_options());
    if (!log.ok()) _exit(3);
    auto in = Inbox::open(**log, InboxOptions{state_dir(), [] { raise(SIGKILL); }});
    if (!in.ok()) _exit(3);
    (void)(*in)->accept(Caller{"node-1", "h"}, old_batch(1, 5));
  });
  auto log = auditlog::FileLog::open(log_options());
  ASSERT_TRUE(log.ok());
  auto in = Inbox::open(**log, InboxOptions{state_dir(), {}});
  ASSERT_TRUE(in.ok()) << in.error().message;
  auto r = (*in)->accept(Caller{"node-1", "h"}, old_batch(1, 6));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, 6u);
  ASSERT_TRUE((*log)->flush().ok());
  EXPECT_EQ(test::numbers_of(all_lines(**log)), range(1, 6));
}

// Killed inside the store's write (a part of the batch's bytes on disk):
// the stored prefix is found, the rest taken from the resend, no event torn
// or doubled.
TEST_F(InboxCrashTest, KilledInsideTheAppendKeepsAPrefixAndTakesTheRest) {
  run_child([&] {
    auditlog::FileLogOptions o = log_options();
    o.io.write = [](int fd, const char* data, size_t len) -> ssize_t {
      // Whole lines of the first half and a torn one, then death.
      (void)!::write(fd, data, len / 2);
      raise(SIGKILL);
      return -1;
    };
    auto log = auditlog::FileLog::open(o);
    if (!log.ok()) _exit(3);
    auto in = Inbox::open(**log, InboxOptions{state_dir(), {}});
    if (!in.ok()) _exit(3);
    (void)(*in)->accept(Caller{"node-1", "h"}, batch_of(1, 8));
  });
  auto log = auditlog::FileLog::open(log_options());
  ASSERT_TRUE(log.ok());
  auto in = Inbox::open(**log, InboxOptions{state_dir(), {}});
  ASSERT_TRUE(in.ok()) << in.error().message;
  const uint64_t kept = (*in)->last_seq("node-1").value();
  EXPECT_GT(kept, 0u);
  EXPECT_LT(kept, 8u);
  auto r = (*in)->accept(Caller{"node-1", "h"}, batch_of(1, 8));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, 8u);
  ASSERT_TRUE((*log)->flush().ok());
  EXPECT_EQ(test::numbers_of(all_lines(**log)), range(1, 8));
}

}  // namespace
}  // namespace vigil::relay
