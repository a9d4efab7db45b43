// The node's spool (relay/outbox.hpp): sequence numbers across restarts,
// durability against a writer killed mid-write, the disk bound and its
// audit.lost event, damage refused.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../support/relay_events.hpp"
#include "../support/temp_dir.hpp"
#include "relay/outbox.hpp"

namespace vigil::relay {
namespace {

using auditlog::Durability;
using test::numbered_event;

class OutboxTest : public ::testing::Test {
 protected:
  OutboxOptions options() const {
    OutboxOptions o;
    o.data_dir = dir_.path();
    o.server_id = "node-1";
    o.server_hostname = "host-1";
    o.flush_interval = std::chrono::milliseconds(20);
    return o;
  }
  std::unique_ptr<Outbox> open(OutboxOptions o) {
    auto box = Outbox::open(std::move(o));
    EXPECT_TRUE(box.ok()) << (box.ok() ? "" : box.error().message);
    return box.ok() ? std::move(*box) : nullptr;
  }
  std::unique_ptr<Outbox> open() { return open(options()); }
  std::vector<std::string> segments() const {
    std::vector<std::string> out;
    for (auto& e : std::filesystem::directory_iterator(dir_.path() + "/spool"))
      if (e.path().filename().string().rfind("events-", 0) == 0) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  // Every spooled event's "n", read back through read().
  static std::vector<uint64_t> all_numbers(Outbox& box, uint64_t from) {
    auto b = box.read(from, 1'000'000, 1u << 30);
    EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().message);
    return b.ok() ? test::numbers_of(b->events) : std::vector<uint64_t>{};
  }
  test::TempDir dir_;
};

TEST_F(OutboxTest, SequenceNumbersFollowOnAcrossRestartsAndAcks) {
  {
    auto box = open();
    for (uint64_t i = 1; i <= 5; ++i) {
      auto seq = box->append(numbered_event(i));
      ASSERT_TRUE(seq.ok());
      EXPECT_EQ(*seq, i);
    }
  }
  {
    auto box = open();
    EXPECT_EQ(box->last_seq(), 5u);
    EXPECT_EQ(all_numbers(*box, 1), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
    ASSERT_TRUE(box->ack(5).ok());
    EXPECT_TRUE(segments().empty()) << "acknowledged events stay on disk";
    EXPECT_EQ(box->stats().spool_bytes, 0u);
  }
  // Everything acknowledged and deleted: the next number still follows on.
  auto box = open();
  EXPECT_EQ(box->acked(), 5u);
  auto seq = box->append(numbered_event(6), Durability::sync);
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, 6u);
  EXPECT_EQ(all_numbers(*box, 6), (std::vector<uint64_t>{6}));
}

TEST_F(OutboxTest, SpoolIsPrivateAndHasOneWriter) {
  std::filesystem::create_directories(dir_.path() + "/spool");
  chmod((dir_.path() + "/spool").c_str(), 0755);
  auto box = open();
  struct stat st {};
  ASSERT_EQ(stat((dir_.path() + "/spool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  auto second = Outbox::open(options());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().kind(), Errc::failed_precondition);
  EXPECT_NE(second.error().message.find("another process"), std::string::npos);
}

TEST_F(OutboxTest, ReadIsBoundedInEventsAndBytesButTakesOneLongEvent) {
  auto box = open();
  for (uint64_t i = 1; i <= 10; ++i) ASSERT_TRUE(box->append(numbered_event(i)).ok());
  auto b = box->read(3, 4, 1u << 20);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->first_seq, 3u);
  EXPECT_EQ(test::numbers_of(b->events), (std::vector<uint64_t>{3, 4, 5, 6}));
  const size_t one = numbered_event(1).size() - 1;
  b = box->read(7, 100, 2 * one);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(test::numbers_of(b->events), (std::vector<uint64_t>{7, 8}));
  b = box->read(9, 100, 1);  // shorter than any event: still one
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(test::numbers_of(b->events), (std::vector<uint64_t>{9}));
  b = box->read(11, 100, 1u << 20);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->events.empty());
}

TEST_F(OutboxTest, SegmentsRollAndAreDeletedOnlyWhenWhollyAcknowledged) {
  OutboxOptions o = options();
  o.segment_bytes = 300;  // a few events a segment
  auto box = open(o);
  for (uint64_t i = 1; i <= 40; ++i) ASSERT_TRUE(box->append(numbered_event(i)).ok());
  const size_t before = segments().size();
  ASSERT_GT(before, 4u);
  ASSERT_TRUE(box->ack(20).ok());
  const size_t after = segments().size();
  EXPECT_LT(after, before);
  EXPECT_GT(after, 0u);
  box.reset();
  box = open(o);
  std::vector<uint64_t> want;
  for (uint64_t i = 21; i <= 40; ++i) want.push_back(i);
  EXPECT_EQ(all_numbers(*box, 21), want);
  EXPECT_EQ(box->acked(), 20u);
}

// A writer killed with SIGKILL in the middle of a write: the unfinished
// record is cut at the next open, nothing acknowledged is lost, nothing
// appears twice, and the numbers go on.
TEST_F(OutboxTest, WriterKilledMidWriteLeavesNoTornOrDuplicateEvent) {
  {
    auto box = open();
    for (uint64_t i = 1; i <= 3; ++i) ASSERT_TRUE(box->append(numbered_event(i), Durability::sync).ok());
  }
  const std::string fourth = numbered_event(4);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    OutboxOptions o = options();
    o.io.write = [](int fd, const char* data, size_t len) -> ssize_t {
      (void)!::write(fd, data, len / 2);
      raise(SIGKILL);
      return -1;
    };
    auto box = Outbox::open(o);
    if (!box.ok()) _exit(3);
    (void)(*box)->append(fourth, Durability::sync);
    _exit(4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;

  auto box = open();
  EXPECT_EQ(box->stats().torn_repairs, 1u);
  EXPECT_EQ(box->last_seq(), 3u);
  EXPECT_EQ(all_numbers(*box, 1), (std::vector<uint64_t>{1, 2, 3}));
  auto seq = box->append(numbered_event(4));
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, 4u);
  EXPECT_EQ(all_numbers(*box, 1), (std::vector<uint64_t>{1, 2, 3, 4}));
}

TEST_F(OutboxTest, DamageInsideTheSpoolIsRefusedNotSkipped) {
  OutboxOptions o = options();
  o.segment_bytes = 200;
  {
    auto box = open(o);
    for (uint64_t i = 1; i <= 10; ++i) ASSERT_TRUE(box->append(numbered_event(i)).ok());
  }
  const auto files = segments();
  ASSERT_GE(files.size(), 2u);
  // Flip a byte of the first segment's first record.
  int fd = ::open(files[0].c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char c = 0;
  ASSERT_EQ(pread(fd, &c, 1, 30), 1);
  c ^= 0x20;
  ASSERT_EQ(pwrite(fd, &c, 1, 30), 1);
  ::close(fd);
  auto box = Outbox::open(o);
  ASSERT_FALSE(box.ok());
  EXPECT_EQ(box.error().kind(), Errc::data_loss);
  EXPECT_NE(box.error().message.find(files[0]), std::string::npos) << box.error().message;
}

TEST_F(OutboxTest, FullSpoolCountsLossAndReportsItOnceThereIsRoom) {
  OutboxOptions o = options();
  o.max_spool_bytes = 600;
  auto box = open(o);
  uint64_t accepted = 0, refused = 0;
  for (uint64_t i = 1; i <= 20; ++i) {
    auto r = box->append(numbered_event(i));
    if (r.ok()) {
      ++accepted;
    } else {
      EXPECT_EQ(r.error().kind(), Errc::resource_exhausted);
      ++refused;
    }
  }
  ASSERT_GT(refused, 0u);
  ASSERT_GT(accepted, 0u);
  EXPECT_EQ(box->stats().lost, refused);
  EXPECT_EQ(box->stats().lost_unreported, refused);
  // The auth service takes the spool: the count goes in first.
  ASSERT_TRUE(box->ack(box->last_seq()).ok());
  EXPECT_EQ(box->stats().lost_unreported, 0u);
  ASSERT_TRUE(box->append(numbered_event(100)).ok());
  auto b = box->read(accepted + 1, 10, 1u << 20);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->events.size(), 2u);
  auto lost = nlohmann::json::parse(b->events[0]);
  EXPECT_EQ(lost["event"], "audit.lost");
  EXPECT_EQ(lost["count"], refused);
  EXPECT_EQ(lost["server_id"], "node-1");
  EXPECT_EQ(test::numbers_of({b->events[1]}), (std::vector<uint64_t>{100}));
}

// The disk refuses a write (ENOSPC) half way: none of the batch is spooled,
// the loss is counted, and later events go on with the next numbers.
TEST_F(OutboxTest, FailedWriteTakesBackThePartAndCountsTheLoss) {
  OutboxOptions o = options();
  auto fail = std::make_shared<std::atomic<bool>>(false);
  o.io.write = [fail](int fd, const char* data, size_t len) -> ssize_t {
    if (!*fail) return ::write(fd, data, len);
    (void)!::write(fd, data, len / 2);
    errno = ENOSPC;
    return -1;
  };
  auto box = open(o);
  ASSERT_TRUE(box->append(numbered_event(1)).ok());
  *fail = true;
  const std::string a = numbered_event(2), b = numbered_event(3);
  std::vector<std::string_view> two{a, b};
  auto r = box->append(two);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::resource_exhausted);
  EXPECT_EQ(box->stats().lost, 2u);
  *fail = false;
  ASSERT_TRUE(box->append(numbered_event(4)).ok());
  auto batch = box->read(1, 10, 1u << 20);
  ASSERT_TRUE(batch.ok());
  ASSERT_EQ(batch->events.size(), 3u);
  EXPECT_EQ(test::numbers_of({batch->events[0]}), (std::vector<uint64_t>{1}));
  EXPECT_EQ(nlohmann::json::parse(batch->events[1])["count"], 2);
  EXPECT_EQ(test::numbers_of({batch->events[2]}), (std::vector<uint64_t>{4}));
  box.reset();
  box = open(o);  // and the spool reads back whole
  EXPECT_EQ(box->last_seq(), 3u);
}

TEST_F(OutboxTest, RefusesLinesThatAreNotEvents) {
  auto box = open();
  for (std::string bad : {"", "{}", "not json\n", "{\"a\":1}\n{\"b\":2}\n"}) {
    auto r = box->append(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().kind(), Errc::invalid_argument);
  }
  EXPECT_EQ(box->last_seq(), 0u);
  EXPECT_FALSE(box->ack(1).ok()) << "an acknowledgement of an event never spooled";
}

}  // namespace
}  // namespace vigil::relay
