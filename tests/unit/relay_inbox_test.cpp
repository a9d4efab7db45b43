// The auth side's ingest of events (relay/inbox.hpp): exactly once and in
// order per node, the node's identity from the caller, a crash between the
// store's append and the checkpoint.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
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

// The stored line is the node's members as sent, after the three the Inbox
// sets: nothing re-serialised (a number keeps its spelling), and the three
// are replaced also when the node spells them with escapes, so the stored
// line never holds two server_id (a reader taking the last would see the
// forged one).
TEST_F(InboxTest, KeepsTheNodesMembersAsSentAndReplacesEscapedForgeries) {
  auto in = open();
  Batch b = batch_of(1, 1);
  b.events[0] =
      R"({"event":"x","ratio":1.50,"nested":{"server_id":"inner"},"server_id":"node-1",)"
      R"("server_hostname":"forged","relay_seq":7,"time":"2026-11-28T03:00:00Z"})";
  ASSERT_TRUE(in->accept(node1_, b).ok());
  auto lines = all_lines(*store_);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            R"({"server_id":"node-1","server_hostname":"host-1","relay_seq":1,"event":"x",)"
            R"("ratio":1.50,"nested":{"server_id":"inner"},"time":"2026-11-28T03:00:00Z"})");
  // Forging another node's id with escapes is refused like the plain one.
  Batch forged = batch_of(2, 2);
  forged.events[0] = R"({"event":"x","server_id":"node-2","time":"2026-11-28T03:00:00Z"})";
  auto r = in->accept(node1_, forged);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::permission_denied);
  // A key twice (which one would a reader take?) is refused.
  Batch twice = batch_of(2, 2);
  twice.events[0] = R"({"event":"x","event":"y","time":"2026-11-28T03:00:00Z"})";
  r = in->accept(node1_, twice);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::invalid_argument);
  EXPECT_NE(r.error().message.find("twice"), std::string::npos) << r.error().message;
  // Bad UTF-8 inside a string, and text after the object.
  for (std::string bad : {std::string("{\"event\":\"x\xff\",\"time\":\"2026-11-28T03:00:00Z\"}"),
                          std::string(R"({"event":"x","time":"2026-11-28T03:00:00Z"} {})")}) {
    Batch t = batch_of(2, 2);
    t.events[0] = bad;
    r = in->accept(node1_, t);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().kind(), Errc::invalid_argument) << bad;
  }
  EXPECT_EQ(all_lines(*store_).size(), 1u);
}

// A store whose first append waits until the test opens the gate, so that
// batches of other nodes queue behind it.
class GatedStore final : public auditlog::AuditStore {
 public:
  explicit GatedStore(auditlog::AuditStore& inner) : inner_(inner) {}
  Result<void> emit(std::string_view line, auditlog::Durability d) override {
    return inner_.emit(line, d);
  }
  Result<void> flush() override { return inner_.flush(); }
  Result<void> append(std::span<const std::string_view> lines, auditlog::Durability d) override {
    {
      std::unique_lock lk(mu_);
      ++appends_;
      entered_ = true;
      cv_.notify_all();
      cv_.wait(lk, [&] { return open_; });
    }
    return inner_.append(lines, d);
  }
  Result<auditlog::Page> search(const auditlog::Query& q) override { return inner_.search(q); }
  void wait_entered() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return entered_; });
  }
  void open_gate() {
    std::lock_guard lk(mu_);
    open_ = true;
    cv_.notify_all();
  }
  int appends() {
    std::lock_guard lk(mu_);
    return appends_;
  }

 private:
  auditlog::AuditStore& inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false, open_ = false;
  int appends_ = 0;
};

// Group commit: batches of several nodes that arrive while one is being
// stored go into the store together (one sync append, one journal sync),
// each node's events in order and acknowledged right.
TEST_F(InboxTest, BatchesOfSeveralNodesShareOneCommit) {
  GatedStore gated(*store_);
  auto in = Inbox::open(gated, InboxOptions{dir_.path() + "/relay/events", {}});
  ASSERT_TRUE(in.ok()) << in.error().message;
  std::vector<Result<uint64_t>> answers(6, uint64_t{0});
  std::vector<std::thread> senders;
  senders.emplace_back([&] { answers[0] = (*in)->accept(Caller{"node-0", "h0"}, batch_of(1, 3)); });
  gated.wait_entered();  // node-0's batch is in the store's append: the rest queue
  for (int i = 1; i < 6; ++i)
    senders.emplace_back([&, i] {
      answers[i] = (*in)->accept(Caller{"node-" + std::to_string(i % 3), "h"},
                                 i < 3 ? batch_of(1, 2) : batch_of(1, 4));
    });
  // Wait until the five queued (their stamping done), then let the first go.
  // (in either order, a node's 1..2 and 1..4 in one group store 1..4 once)
  for (int spin = 0; spin < 10000 && (*in)->queued() < 5; ++spin)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ((*in)->queued(), 5u);
  gated.open_gate();
  for (auto& t : senders) t.join();
  for (auto& a : answers) ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(gated.appends(), 2);  // node-0's first batch, then the five together
  EXPECT_EQ((*in)->stats().groups, 2u);
  EXPECT_EQ((*in)->last_seq("node-0").value(), 4u);
  EXPECT_EQ((*in)->last_seq("node-1").value(), 4u);
  EXPECT_EQ((*in)->last_seq("node-2").value(), 4u);
  std::map<std::string, std::vector<uint64_t>> per_node;
  for (const auto& l : all_lines(*store_)) {
    auto j = nlohmann::json::parse(l);
    per_node[j["server_id"].get<std::string>()].push_back(j["n"].get<uint64_t>());
  }
  EXPECT_EQ(per_node["node-0"], range(1, 4));
  EXPECT_EQ(per_node["node-1"], range(1, 4));
  EXPECT_EQ(per_node["node-2"], range(1, 4));
}

// The state directory: a journal line torn by a crash is cut off (and the
// next record does not glue onto it), a damaged line elsewhere refuses the
// open, checkpoints of the first format are taken over.
TEST_F(InboxTest, CutsATornJournalLineAndRefusesADamagedOne) {
  const std::string journal = dir_.path() + "/relay/events/journal.log";
  {
    auto in = open();
    ASSERT_TRUE(in->accept(node1_, batch_of(1, 4)).ok());
  }
  auto append_text = [&](const std::string& text) {
    FILE* f = std::fopen(journal.c_str(), "a");
    ASSERT_NE(f, nullptr);
    std::fputs(text.c_str(), f);
    std::fclose(f);
  };
  append_text(R"({"intent":[{"node":"node-1","first":5,"la)");
  {
    auto in = open();
    ASSERT_NE(in, nullptr);
    EXPECT_EQ(in->last_seq("node-1").value(), 4u);
    ASSERT_TRUE(in->accept(node1_, batch_of(5, 6)).ok());
  }
  {
    auto in = open();  // the records after the cut read back whole
    ASSERT_NE(in, nullptr);
    EXPECT_EQ(in->last_seq("node-1").value(), 6u);
  }
  append_text("not a record\n{\"commit\":[]}\n");
  auto bad = Inbox::open(*store_, InboxOptions{dir_.path() + "/relay/events", {}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind(), Errc::data_loss);
  EXPECT_NE(bad.error().message.find("journal.log:"), std::string::npos) << bad.error().message;
  EXPECT_EQ(test::numbers_of(all_lines(*store_)), range(1, 6));
}

TEST_F(InboxTest, TakesOverCheckpointsOfTheFirstFormat) {
  const std::string state = dir_.path() + "/relay/events";
  ASSERT_EQ(std::system(("mkdir -p " + state).c_str()), 0);
  FILE* f = std::fopen((state + "/node-1.json").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("{\"last\":4}\n", f);
  std::fclose(f);
  {
    auto in = open();
    ASSERT_NE(in, nullptr);
    EXPECT_EQ(in->last_seq("node-1").value(), 4u);
  }
  EXPECT_NE(::access((state + "/node-1.json").c_str(), F_OK), 0);
  auto in = open();
  EXPECT_EQ(in->last_seq("node-1").value(), 4u);
  auto r = in->accept(node1_, batch_of(1, 5));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(test::numbers_of(all_lines(*store_)), range(5, 5));
}

// Intents of two nodes left by a crash of one group commit: one search
// resolves both, each to the prefix the store holds.
TEST_F(InboxTest, ResolvesTheIntentsOfSeveralNodesLeftByACrash) {
  const std::string state = dir_.path() + "/relay/events";
  ASSERT_EQ(std::system(("mkdir -p " + state).c_str()), 0);
  std::vector<std::string> stored;
  for (uint64_t i = 1; i <= 3; ++i) {
    int64_t t = 0;
    std::string e = test::numbered_event(i);
    e.pop_back();
    stored.push_back(rewrite_event(e, node1_, i, &t).value());
  }
  {
    int64_t t = 0;
    std::string e = test::numbered_event(1);
    e.pop_back();
    stored.push_back(rewrite_event(e, Caller{"node-2", "h2"}, 1, &t).value());
  }
  std::vector<std::string_view> views(stored.begin(), stored.end());
  ASSERT_TRUE(store_->append(views).ok());
  FILE* f = std::fopen((state + "/journal.log").c_str(), "w");
  ASSERT_NE(f, nullptr);
  const int64_t t0 = 1795834800000000000;  // 2026-11-28T03:00:00Z
  std::fprintf(f,
               "{\"intent\":[{\"node\":\"node-1\",\"first\":1,\"last\":5,\"from_ns\":%lld,\"to_ns\":%lld},"
               "{\"node\":\"node-2\",\"first\":1,\"last\":2,\"from_ns\":%lld,\"to_ns\":%lld}]}\n",
               (long long)t0, (long long)t0, (long long)t0, (long long)t0);
  std::fclose(f);
  auto in = open();
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->last_seq("node-1").value(), 3u);
  EXPECT_EQ(in->last_seq("node-2").value(), 1u);
  ASSERT_TRUE(in->accept(node1_, batch_of(1, 5)).ok());
  ASSERT_TRUE(in->accept(Caller{"node-2", "h2"}, batch_of(1, 2)).ok());
  std::map<std::string, std::vector<uint64_t>> per_node;
  for (const auto& l : all_lines(*store_)) {
    auto j = nlohmann::json::parse(l);
    per_node[j["server_id"].get<std::string>()].push_back(j["n"].get<uint64_t>());
  }
  EXPECT_EQ(per_node["node-1"], range(1, 5));
  EXPECT_EQ(per_node["node-2"], range(1, 2));
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

// Killed after a snapshot replaced state.json and before the journal was
// emptied: the journal read again over the newer snapshot changes nothing.
TEST_F(InboxCrashTest, KilledBetweenSnapshotAndEmptyingTheJournalStoresOnce) {
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
    static bool armed = false;
    InboxOptions o{state_dir(), {}};
    o.journal_max_bytes = 1;
    o.after_snapshot = [] {
      if (armed) raise(SIGKILL);
    };
    auto in = Inbox::open(**log, o);
    if (!in.ok()) _exit(3);
    armed = true;
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

}  // namespace
}  // namespace vigil::relay
