// The recording store contract (src/recording/recording_store.hpp): one
// suite that every back end runs. A back end joins by adding a Fixture below
// (how to open a handle on fresh storage, how a writer dies, how stored bytes
// get damaged) to INSTANTIATE_TEST_SUITE_P at the end; nothing else in the
// suite knows which back end it tests. Records are written with
// RecordingWriter and read with RecordingReader, as Vigil does.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../recording/test_util.hpp"
#include "recording/file_store.hpp"
#include "recording/format.hpp"
#include "recording/memory_store.hpp"
#include "recording/reader.hpp"
#include "recording/recording_store.hpp"
#include "recording/store.hpp"
#include "recording/writer.hpp"

namespace vigil::recording {
namespace {

using namespace testing;

// ---- Back ends -----------------------------------------------------------

class Fixture {
 public:
  virtual ~Fixture() = default;
  // A new handle on this fixture's storage, as another process would open it.
  virtual std::unique_ptr<RecordingStore> open() = 0;
  // Runs `write` in a writer process that then dies with the writer it
  // returns still open (never closed).
  using Write = std::function<std::unique_ptr<RecordingWriter>(RecordingStore&)>;
  virtual void run_dying_writer(Write write) = 0;
  // Damage: `bytes` written over the stored ones at `offset`, or added at
  // the end (offset = npos), behind the store's back.
  virtual void tamper(const std::string& sid, uint64_t offset, const std::string& bytes) = 0;
};

class FileFixture final : public Fixture {
 public:
  std::unique_ptr<RecordingStore> open() override {
    return std::make_unique<FileRecordingStore>(dir_.path());
  }
  // A real death: a child process that writes and _exits (no destructor,
  // no finish).
  void run_dying_writer(Write write) override {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      FileRecordingStore store(dir_.path());
      auto w = write(store);
      _exit(w ? 0 : 1);  // no destructor runs: the writer dies open
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  void tamper(const std::string& sid, uint64_t offset, const std::string& bytes) override {
    const std::string path = recording_path(dir_.path(), sid);
    int fd = ::open(path.c_str(), O_WRONLY | (offset == std::string::npos ? O_APPEND : 0));
    ASSERT_GE(fd, 0);
    if (offset == std::string::npos)
      ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), ssize_t(bytes.size()));
    else
      ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), off_t(offset)), ssize_t(bytes.size()));
    ::close(fd);
  }

 private:
  TempDir dir_;
};

class MemoryFixture final : public Fixture {
 public:
  std::unique_ptr<RecordingStore> open() override {
    return std::make_unique<MemoryRecordingStore>(storage_);
  }
  // The memory store dies with its process: a writer's only way to stop
  // unfinished is to let its sink go unfinished.
  void run_dying_writer(Write write) override {
    MemoryRecordingStore store(storage_);
    auto w = write(store);
    ASSERT_NE(w, nullptr);
    w->abandon();
  }
  void tamper(const std::string& sid, uint64_t offset, const std::string& bytes) override {
    MemoryRecordingStore store(storage_);
    auto info = store.info(sid);
    ASSERT_TRUE(info.ok());
    auto src = store.open(sid);
    ASSERT_TRUE(src.ok());
    std::string all(info->bytes, '\0');
    auto got = (*src)->read_at(0, all.data(), all.size());
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got.value(), all.size());
    if (offset == std::string::npos)
      all += bytes;
    else
      all.replace(offset, bytes.size(), bytes);
    storage_->put_raw(sid, std::move(all), info->status);
  }

 private:
  std::shared_ptr<MemoryRecordingStorage> storage_ = std::make_shared<MemoryRecordingStorage>();
};

struct Backend {
  std::string name;
  std::function<std::unique_ptr<Fixture>()> make;
};
void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

// ---- Helpers -------------------------------------------------------------

Header header_for(const std::string& sid) {
  Header h = test_header();
  h.sid = sid;
  return h;
}

std::vector<Record> sample_records(int n, const std::string& tag = "") {
  std::vector<Record> out;
  for (int i = 0; i < n; ++i) {
    const int64_t t = kStart + i * kMs;
    if (i % 5 == 3)
      out.push_back(resize(t, uint16_t(80 + i % 50), uint16_t(24 + i % 10)));
    else if (i % 5 == 4)
      out.push_back(event(t, "{\"event\":\"session.command\",\"n\":" + std::to_string(i) + "}"));
    else
      out.push_back(output(t, tag + "line " + std::to_string(i) + "\r\n"));
  }
  return out;
}

struct Read {
  Status status = Status::unknown;
  std::vector<Record> records;
  Damage damage;
};

Read read_back(RecordingStore& store, const std::string& sid) {
  Read out;
  auto reader = RecordingReader::open(store, sid);
  EXPECT_TRUE(reader.ok()) << (reader ? "" : reader.error().message);
  if (!reader) return out;
  EXPECT_EQ(reader->header().sid, sid);
  out.status = reader->status();
  Record r;
  while (reader->next(r)) out.records.push_back(r);
  out.damage = reader->damage();
  return out;
}

Status status_of(RecordingStore& store, const std::string& sid) {
  auto info = store.info(sid);
  EXPECT_TRUE(info.ok()) << (info ? "" : info.error().message);
  return info ? info->status : Status::unknown;
}

class RecordingStoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    fixture_ = GetParam().make();
    store_ = fixture_->open();
  }
  std::unique_ptr<Fixture> fixture_;
  std::unique_ptr<RecordingStore> store_;
};

// ---- The contract --------------------------------------------------------

TEST_P(RecordingStoreContract, RecordsReadBackInOrderWhileLiveAndWhenComplete) {
  const auto records = sample_records(40);
  auto w = RecordingWriter::create(*store_, header_for("live"), manual_options(256));
  ASSERT_TRUE(w.ok()) << w.error().message;
  for (size_t i = 0; i < 20; ++i) append(**w, records[i]);
  ASSERT_TRUE((*w)->flush().ok());

  // Another handle sees the chunks written so far, in progress.
  auto other = fixture_->open();
  Read live = read_back(*other, "live");
  EXPECT_EQ(live.status, Status::in_progress);
  EXPECT_EQ(live.records, std::vector<Record>(records.begin(), records.begin() + 20));
  EXPECT_FALSE(live.damage);

  for (size_t i = 20; i < records.size(); ++i) append(**w, records[i]);
  ASSERT_TRUE((*w)->close().ok());
  Read done = read_back(*other, "live");
  EXPECT_EQ(done.status, Status::complete);
  EXPECT_EQ(done.records, records);
  EXPECT_FALSE(done.damage);
}

TEST_P(RecordingStoreContract, StatusGoesFromInProgressToCompleteOrInterrupted) {
  const std::string head = encode_file_header(header_for("a"));
  auto sink = store_->create("a", head);
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  EXPECT_EQ(status_of(*store_, "a"), Status::in_progress);
  auto other = fixture_->open();
  EXPECT_EQ(status_of(*other, "a"), Status::in_progress);
  ASSERT_TRUE((*sink)->finish().ok());
  EXPECT_EQ(status_of(*other, "a"), Status::complete);
  // Finished is final.
  auto late = (*sink)->append("more");
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().kind(), Errc::failed_precondition);
  ASSERT_TRUE(store_->mark_interrupted("a").ok());
  EXPECT_EQ(status_of(*other, "a"), Status::complete);

  // A sink given up without finish().
  {
    auto dropped = store_->create("b", encode_file_header(header_for("b")));
    ASSERT_TRUE(dropped.ok());
  }
  EXPECT_EQ(status_of(*other, "b"), Status::interrupted);

  // A writer that dies with its recording open.
  fixture_->run_dying_writer([](RecordingStore& s) -> std::unique_ptr<RecordingWriter> {
    auto w = RecordingWriter::create(s, header_for("c"), manual_options());
    if (!w || !(*w)->flush()) return nullptr;
    (*w)->output(kStart + kMs, "before the end\r\n");
    if (!(*w)->flush()) return nullptr;
    (*w)->output(kStart + 2 * kMs, "pending, dies with the writer");
    return std::move(*w);
  });
  Read c = read_back(*other, "c");
  EXPECT_EQ(c.status, Status::interrupted);
  EXPECT_EQ(c.records, (std::vector<Record>{output(kStart + kMs, "before the end\r\n")}));
  EXPECT_FALSE(c.damage);

  // Recovery marks an in-progress recording whose writer it knows is gone.
  auto held = store_->create("d", encode_file_header(header_for("d")));
  ASSERT_TRUE(held.ok());
  ASSERT_TRUE(other->mark_interrupted("d").ok());
  EXPECT_EQ(status_of(*store_, "d"), Status::interrupted);
}

TEST_P(RecordingStoreContract, ListIsSortedBySidWithEachStatus) {
  constexpr int kCount = 300;
  std::vector<std::unique_ptr<RecordingSink>> live;
  std::vector<std::string> sids;
  for (int i = kCount - 1; i >= 0; --i) {  // created out of order
    char sid[32];
    std::snprintf(sid, sizeof sid, "sess-%04d", i);
    sids.insert(sids.begin(), sid);
    auto sink = store_->create(sid, encode_file_header(header_for(sid)));
    ASSERT_TRUE(sink.ok()) << sink.error().message;
    if (i % 3 == 0) {
      ASSERT_TRUE((*sink)->finish().ok());
    } else if (i % 3 == 1) {
      live.push_back(std::move(*sink));
    }
    // i % 3 == 2: dropped unfinished
  }
  auto listed = fixture_->open()->list();
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  ASSERT_EQ(listed->size(), size_t(kCount));
  for (int i = 0; i < kCount; ++i) {
    const RecordingInfo& info = (*listed)[i];
    EXPECT_EQ(info.sid, sids[i]);
    EXPECT_EQ(info.status, i % 3 == 0   ? Status::complete
                           : i % 3 == 1 ? Status::in_progress
                                        : Status::interrupted)
        << info.sid;
    EXPECT_EQ(info.bytes, encode_file_header(header_for(sids[i])).size());
    EXPECT_FALSE(info.name.empty());
  }

  // A unique prefix names one; an ambiguous or unknown one is refused.
  auto one = store_->resolve("sess-0123");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, "sess-0123");
  auto many = store_->resolve("sess-01");
  ASSERT_FALSE(many.ok());
  EXPECT_EQ(many.error().kind(), Errc::invalid_argument);
  EXPECT_NE(many.error().message.find("ambiguous"), std::string::npos);
  auto none = store_->resolve("nope");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().kind(), Errc::not_found);
}

TEST_P(RecordingStoreContract, MissingTakenAndBadNamesAreTypedErrors) {
  auto missing = store_->open("missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind(), Errc::not_found);
  EXPECT_EQ(store_->info("missing").error().kind(), Errc::not_found);
  EXPECT_EQ(store_->mark_interrupted("missing").error().kind(), Errc::not_found);
  auto reader = RecordingReader::open(*store_, "missing");
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.error().kind(), Errc::not_found);

  auto first = store_->create("taken", encode_file_header(header_for("taken")));
  ASSERT_TRUE(first.ok());
  auto second = fixture_->open()->create("taken", "other bytes");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().kind(), Errc::already_exists);
  ASSERT_TRUE((*first)->finish().ok());
  EXPECT_EQ(read_back(*store_, "taken").status, Status::complete);  // untouched by the refusal

  for (std::string bad : {std::string(""), std::string("../etc/passwd"), std::string("a/b"),
                          std::string(".."), std::string("tab\there"), std::string(300, 'x')}) {
    auto r = store_->create(bad, "x");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().kind(), Errc::invalid_argument) << bad;
  }
  auto listed = store_->list();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 1u);
}

TEST_P(RecordingStoreContract, CorruptBytesAreDataLossOrDamageNeverWrongRecords) {
  auto w = RecordingWriter::create(*store_, header_for("x"), manual_options());
  ASSERT_TRUE(w.ok());
  (*w)->output(kStart + kMs, "first chunk");
  ASSERT_TRUE((*w)->flush().ok());
  const uint64_t first_end = store_->info("x")->bytes;
  (*w)->output(kStart + 2 * kMs, "second chunk, to be damaged");
  ASSERT_TRUE((*w)->close().ok());

  // A byte of the second chunk's payload changed: its checksum fails.
  fixture_->tamper("x", first_end + kFrameSize + 2, "\xff");
  Read r = read_back(*store_, "x");
  EXPECT_EQ(r.records, (std::vector<Record>{output(kStart + kMs, "first chunk")}));
  EXPECT_EQ(r.damage.kind, Damage::Kind::corrupt);
  EXPECT_EQ(r.damage.offset, first_end);

  // The header changed: not a recording at all.
  fixture_->tamper("x", 0, "NOTAREC!");
  auto reader = RecordingReader::open(*store_, "x");
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.error().kind(), Errc::data_loss);
}

TEST_P(RecordingStoreContract, AChunkCutByADyingWriterIsNeverGivenOut) {
  // A whole chunk, then the first bytes of the next one: what a writer
  // killed in the middle of an append leaves.
  fixture_->run_dying_writer([](RecordingStore& s) -> std::unique_ptr<RecordingWriter> {
    auto w = RecordingWriter::create(s, header_for("torn"), manual_options());
    if (!w) return nullptr;
    (*w)->output(kStart + kMs, "whole");
    if (!(*w)->flush()) return nullptr;
    return std::move(*w);
  });
  const uint64_t whole_end = store_->info("torn")->bytes;
  const std::string partial = std::string(kChunkMagic) + "\x02";
  fixture_->tamper("torn", std::string::npos, partial);
  Read r = read_back(*store_, "torn");
  EXPECT_EQ(r.status, Status::interrupted);
  EXPECT_EQ(r.records, (std::vector<Record>{output(kStart + kMs, "whole")}));
  EXPECT_EQ(r.damage.kind, Damage::Kind::truncated);
  EXPECT_EQ(r.damage.offset, whole_end);

  // The same cut while its writer lives is a chunk being written: no damage.
  auto w = RecordingWriter::create(*store_, header_for("alive"), manual_options());
  ASSERT_TRUE(w.ok());
  (*w)->output(kStart + kMs, "whole");
  ASSERT_TRUE((*w)->flush().ok());
  fixture_->tamper("alive", std::string::npos, partial);
  Read a = read_back(*fixture_->open(), "alive");
  EXPECT_EQ(a.status, Status::in_progress);
  EXPECT_EQ(a.records, (std::vector<Record>{output(kStart + kMs, "whole")}));
  EXPECT_FALSE(a.damage);
  (*w)->abandon();  // its bytes were damaged on purpose: not finished
}

TEST_P(RecordingStoreContract, ConcurrentWritersOfManySessionsKeepTheirOwnRecords) {
  constexpr int kWriters = 8;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      auto store = fixture_->open();
      const std::string sid = "w" + std::to_string(t);
      WriterOptions o = manual_options(512);  // many chunks each
      auto w = RecordingWriter::create(*store, header_for(sid), o);
      if (!w) {
        ++failures;
        return;
      }
      for (const Record& r : sample_records(400, sid + ":")) append(**w, r);
      if (!(*w)->close()) ++failures;
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);
  for (int t = 0; t < kWriters; ++t) {
    const std::string sid = "w" + std::to_string(t);
    Read r = read_back(*store_, sid);
    EXPECT_EQ(r.status, Status::complete);
    EXPECT_EQ(r.records, sample_records(400, sid + ":")) << sid;
    EXPECT_FALSE(r.damage);
  }
}

TEST_P(RecordingStoreContract, LargeOutputRoundTripsWhole) {
  std::string big(8u << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char((i * 131) >> 3);
  auto w = RecordingWriter::create(*store_, header_for("big"));
  ASSERT_TRUE(w.ok());
  (*w)->output(kStart + kMs, big);
  ASSERT_TRUE((*w)->close().ok());
  Read r = read_back(*store_, "big");
  EXPECT_FALSE(r.damage);
  std::string back;
  for (const Record& rec : r.records) {
    EXPECT_EQ(rec.type, RecordType::output);
    back += rec.data;
  }
  EXPECT_EQ(back.size(), big.size());
  EXPECT_TRUE(back == big);
}

INSTANTIATE_TEST_SUITE_P(
    Backends, RecordingStoreContract,
    ::testing::Values(Backend{"file", [] { return std::make_unique<FileFixture>(); }},
                      Backend{"memory", [] { return std::make_unique<MemoryFixture>(); }}),
    [](const ::testing::TestParamInfo<Backend>& info) { return info.param.name; });

}  // namespace
}  // namespace vigil::recording
