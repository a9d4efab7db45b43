// The engine's worker half (RecordOrder) on hand-built ring records: no root,
// no kernel. Order across rings and batches, per-session order, nothing lost
// or made up, and the reused event never carries a field of the one before.
#include <gtest/gtest.h>
#include <linux/types.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "engine/record_order.hpp"

extern "C" {
#include "vigil_events.h"
}

using namespace vigil;

namespace {

const decode::TimeBase kTime{1'000'000'000'000'000'000};

// Two owners standing for two sessions.
int session_a, session_b;

std::vector<std::byte> open_record(uint64_t boot_ns, uint32_t pid, const std::string& path,
                                   const std::string& kernel_path, uint32_t flags = 0) {
  vigil_open_record rec;
  std::memset(&rec, 0, offsetof(vigil_open_record, data));
  rec.head.kind = VIGIL_KIND_DISK;
  rec.head.session = 3;
  rec.head.ktime_ns = boot_ns;
  rec.head.pid = pid;
  rec.head.tid = pid;
  std::strcpy(rec.head.comm, pid % 2 ? "cat" : "a-long-comm-name");
  rec.flags = flags;
  rec.path_len = path.size();
  rec.kernel_path_len = kernel_path.size();
  std::string data = path + '\0';
  if (!kernel_path.empty()) data += kernel_path + '\0';
  std::vector<std::byte> out(offsetof(vigil_open_record, data) + data.size());
  std::memcpy(out.data(), &rec, offsetof(vigil_open_record, data));
  std::memcpy(out.data() + offsetof(vigil_open_record, data), data.data(), data.size());
  return out;
}

// A command record as the kernel sends it: the fixed part, argv, the path
// and its NUL, the kernel path and its NUL.
std::vector<std::byte> exec_record(uint64_t boot_ns, uint32_t pid, const std::string& path = "",
                                   const std::string& argv = "",
                                   const std::string& kernel_path = "") {
  vigil_exec_record rec;
  std::memset(&rec, 0, offsetof(vigil_exec_record, data));
  rec.head.kind = VIGIL_KIND_COMMAND;
  rec.head.session = 3;
  rec.head.ktime_ns = boot_ns;
  rec.head.pid = pid;
  rec.argv_len = argv.size();
  rec.path_len = path.size();
  rec.kernel_path_len = kernel_path.size();
  std::string data = argv + path + '\0';
  if (!kernel_path.empty()) data += kernel_path + '\0';
  std::vector<std::byte> out(offsetof(vigil_exec_record, data) + data.size());
  std::memcpy(out.data(), &rec, offsetof(vigil_exec_record, data));
  std::memcpy(out.data() + offsetof(vigil_exec_record, data), data.data(), data.size());
  return out;
}

struct Got {
  void* owner;
  Kind kind;
  uint64_t boot_ns;
  uint32_t pid;
  std::string path, kernel_path, program;
  bool kernel_path_missing = false;
  std::vector<std::string> argv;
};

class Collect : public RecordOrder::Handler {
 public:
  void deliver(void* owner, const Event& ev) override {
    Got g{owner, ev.kind(), static_cast<uint64_t>(ev.time_ns - kTime.boot_to_realtime_ns),
          ev.process.pid};
    g.program = ev.process.program;
    if (auto* d = std::get_if<DiskEvent>(&ev.body)) {
      g.path = d->path;
      g.kernel_path = d->kernel_path;
      g.kernel_path_missing = d->kernel_path_missing;
    } else if (auto* c = std::get_if<CommandEvent>(&ev.body)) {
      g.path = c->path;
      g.argv = c->argv;
    }
    got.push_back(g);
  }
  void undecodable(void* owner, Kind kind, const std::string& why) override {
    bad.push_back({owner, kind});
    why_ = why;
  }
  std::vector<Got> got;
  std::vector<std::pair<void*, Kind>> bad;
  std::string why_;
};

TEST(RecordOrder, ReleasesInTimeOrderAcrossBatchesAndKinds) {
  RecordOrder order;
  RecordBatch first, second;
  // One ring's records in order, another's interleaved with them, read later.
  first.add(&session_a, open_record(10, 1, "/a", "/a"));
  first.add(&session_a, open_record(30, 1, "/c", "/c"));
  first.add(&session_a, open_record(50, 1, "/e", "/e"));
  second.add(&session_a, exec_record(20, 2));
  second.add(&session_a, exec_record(40, 2));
  order.take(std::move(first));
  order.take(std::move(second));
  EXPECT_EQ(order.held(), 5u);
  Collect out;
  EXPECT_EQ(order.release(UINT64_MAX, kTime, out), 5u);
  ASSERT_EQ(out.got.size(), 5u);
  std::vector<uint64_t> times;
  for (const auto& g : out.got) times.push_back(g.boot_ns);
  EXPECT_EQ(times, (std::vector<uint64_t>{10, 20, 30, 40, 50}));
  EXPECT_EQ(out.got[1].kind, Kind::command);
  EXPECT_EQ(out.got[2].path, "/c");
  EXPECT_EQ(order.held(), 0u);
}

TEST(RecordOrder, EqualTimesKeepTheOrderTheyArrivedIn) {
  RecordOrder order;
  RecordBatch first, second;
  first.add(&session_a, open_record(10, 1, "/1", ""));
  first.add(&session_a, open_record(10, 1, "/2", ""));
  // Out of order inside one batch (two CPUs writing one ring).
  first.add(&session_a, open_record(12, 1, "/4", ""));
  first.add(&session_a, open_record(11, 1, "/3", ""));
  second.add(&session_a, open_record(10, 1, "/2b", ""));
  order.take(std::move(first));
  order.take(std::move(second));
  Collect out;
  order.release(UINT64_MAX, kTime, out);
  std::vector<std::string> paths;
  for (const auto& g : out.got) paths.push_back(g.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"/1", "/2", "/2b", "/3", "/4"}));
}

TEST(RecordOrder, HoldsRecordsYoungerThanTheWatermarkUntilALaterRelease) {
  RecordOrder order;
  RecordBatch batch;
  for (uint64_t t = 1; t <= 10; ++t) batch.add(&session_a, open_record(t * 100, 1, "/f", "/f"));
  order.take(std::move(batch));
  Collect out;
  EXPECT_EQ(order.release(500, kTime, out), 5u);
  EXPECT_EQ(order.held(), 5u);
  ASSERT_EQ(out.got.size(), 5u);
  EXPECT_EQ(out.got.back().boot_ns, 500u);
  // An older record of another ring arrives late: it still goes first.
  RecordBatch late;
  late.add(&session_a, exec_record(550, 9));
  order.take(std::move(late));
  EXPECT_EQ(order.release(UINT64_MAX, kTime, out), 6u);
  ASSERT_EQ(out.got.size(), 10u + 1);
  EXPECT_EQ(out.got[5].boot_ns, 550u);
  EXPECT_EQ(out.got[5].kind, Kind::command);
  for (size_t i = 1; i < out.got.size(); ++i) EXPECT_LE(out.got[i - 1].boot_ns, out.got[i].boot_ns);
}

// Two sessions' storms interleaved over many batches, released with a
// moving watermark as the worker does: every record comes out once, each
// session's in its own order, nothing made up.
TEST(RecordOrder, KeepsEachSessionsOrderAndLosesNothingOverManyPasses) {
  RecordOrder order;
  Collect out;
  uint64_t t = 1000;
  size_t sent = 0;
  for (int pass = 0; pass < 200; ++pass) {
    RecordBatch batch;
    if (pass > 1) {
      EXPECT_TRUE(order.recycle(batch));  // the reader's batch comes back
    }
    EXPECT_TRUE(batch.items.empty());
    for (int i = 0; i < 50; ++i, ++sent) {
      t += 7;
      // Session b's records run a little behind (another ring, read later).
      bool b = i % 3 == 0;
      uint64_t when = b ? t - 40 : t;
      batch.add(b ? &session_b : &session_a,
                open_record(when, b ? 2 : 1, "/p" + std::to_string(sent), ""));
    }
    batch.read_boot_ns = t;
    order.take(std::move(batch));
    order.release(t - 100, kTime, out);
  }
  order.release(UINT64_MAX, kTime, out);
  ASSERT_EQ(out.got.size(), sent);
  EXPECT_TRUE(out.bad.empty());
  std::map<void*, uint64_t> last;
  std::map<std::string, int> seen;
  for (const auto& g : out.got) {
    EXPECT_GE(g.boot_ns, last[g.owner]) << g.path;
    last[g.owner] = g.boot_ns;
    EXPECT_EQ(g.pid, g.owner == &session_b ? 2u : 1u);
    ++seen[g.path];
  }
  EXPECT_EQ(seen.size(), sent);  // each record once
  EXPECT_EQ(order.held(), 0u);
}

TEST(RecordOrder, TheReusedEventCarriesNothingOfTheOneBefore) {
  RecordOrder order;
  RecordBatch batch;
  batch.add(&session_a, open_record(1, 2, "/etc/a-rather-long-requested-path", "/etc/kernel/path"));
  // A failed open: no kernel path, a shorter comm, a missing-kernel-path flag off.
  batch.add(&session_a, open_record(2, 1, "/x", ""));
  batch.add(&session_a, open_record(3, 2, "/y", "", VIGIL_OPEN_KPATH_MISSING));
  batch.add(&session_a, open_record(4, 1, "/z", "/z"));
  order.take(std::move(batch));
  Collect out;
  order.release(UINT64_MAX, kTime, out);
  ASSERT_EQ(out.got.size(), 4u);
  EXPECT_EQ(out.got[0].kernel_path, "/etc/kernel/path");
  EXPECT_EQ(out.got[0].program, "a-long-comm-name");
  EXPECT_EQ(out.got[1].path, "/x");
  EXPECT_EQ(out.got[1].kernel_path, "");
  EXPECT_EQ(out.got[1].program, "cat");
  EXPECT_TRUE(out.got[2].kernel_path_missing);
  EXPECT_FALSE(out.got[3].kernel_path_missing);
  EXPECT_EQ(out.got[3].kernel_path, "/z");
}

TEST(RecordOrder, CommandsKeepTheirArgumentsBetweenOpens) {
  RecordOrder order;
  RecordBatch batch;
  batch.add(&session_a, open_record(1, 1, "/a", "/a"));
  std::string blob = std::string("ls") + '\0' + "-l" + '\0';
  batch.add(&session_a, exec_record(2, 1, "/bin/ls", blob, "/usr/bin/ls"));
  batch.add(&session_a, open_record(3, 1, "/b", "/b"));
  order.take(std::move(batch));
  Collect out;
  order.release(UINT64_MAX, kTime, out);
  ASSERT_EQ(out.got.size(), 3u);
  EXPECT_EQ(out.got[1].kind, Kind::command);
  EXPECT_EQ(out.got[1].path, "/bin/ls");
  EXPECT_EQ(out.got[1].argv, (std::vector<std::string>{"-l"}));
  EXPECT_EQ(out.got[2].path, "/b");
}

TEST(RecordOrder, AnUndecodableRecordIsReportedNotDelivered) {
  RecordOrder order;
  RecordBatch batch;
  auto good = open_record(1, 1, "/a", "/a");
  auto cut = open_record(2, 1, "/b", "/b");
  cut.resize(offsetof(vigil_open_record, data) - 4);  // a head, not a whole disk record
  batch.add(&session_b, good);
  batch.add(&session_b, cut);
  order.take(std::move(batch));
  Collect out;
  EXPECT_EQ(order.release(UINT64_MAX, kTime, out), 2u);
  ASSERT_EQ(out.got.size(), 1u);
  ASSERT_EQ(out.bad.size(), 1u);
  EXPECT_EQ(out.bad[0].first, &session_b);
  EXPECT_EQ(out.bad[0].second, Kind::disk);
  EXPECT_NE(out.why_.find("different builds"), std::string::npos) << out.why_;
}

TEST(RecordOrder, ReleasedBatchesComeBackEmptyWithTheirRoom) {
  RecordOrder order;
  RecordBatch batch, back;
  for (int i = 0; i < 100; ++i) batch.add(&session_a, open_record(i, 1, "/r", "/r"));
  order.take(std::move(batch));
  EXPECT_FALSE(order.recycle(back));  // still held
  Collect out;
  order.release(UINT64_MAX, kTime, out);
  ASSERT_TRUE(order.recycle(back));
  EXPECT_TRUE(back.items.empty());
  EXPECT_TRUE(back.bytes.empty());
  EXPECT_GE(back.bytes.capacity(), 100 * offsetof(vigil_open_record, data));
}

}  // namespace
