// The .vrec file: what the writer puts in comes back from the reader with
// exact bytes and times, across many chunks and threads; a file cut by a
// crash or damaged on disk gives everything before the damage and says
// where it is; files that are not recordings are refused by name.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <thread>

#include "../recording/test_util.hpp"
#include "recording/format.hpp"
#include "recording/reader.hpp"
#include "recording/writer.hpp"

namespace vigil::recording {
namespace {

using namespace testing;

std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s += static_cast<char>(i);
  return s;
}

TEST(RecordingFile, RoundTripKeepsBytesTimesAndHeader) {
  TempDir dir;
  Header h = test_header();
  h.cols = 132;
  h.rows = 43;
  h.interactive = false;
  const std::vector<Record> records = {
      output(kStart, "$ "),
      output(kStart + 1, all_bytes()),
      resize(kStart + 2 * kMs, 100, 30),
      event(kStart + 3 * kMs, R"({"event":"session.command","path":"/bin/ls"})"),
      output(kStart + 3 * kMs, std::string("\0\r\n", 3)),  // same time: arrival order kept
      resize(kStart + 4 * kMs, 65535, 0),
      output(kStart + 3600 * kSec + 7, "an hour later"),
      event(kStart + 3601 * kSec, "{}"),
  };
  const std::string path = make_recording(dir, records, "s.vrec", h);

  ReadBack back = read_all(path);
  EXPECT_EQ(back.header.version, kFormatVersion);
  EXPECT_EQ(back.header.sid, h.sid);
  EXPECT_EQ(back.header.server_id, h.server_id);
  EXPECT_EQ(back.header.user, h.user);
  EXPECT_EQ(back.header.login, h.login);
  EXPECT_EQ(back.header.start_ns, h.start_ns);
  EXPECT_EQ(back.header.cols, 132);
  EXPECT_EQ(back.header.rows, 43);
  EXPECT_FALSE(back.header.interactive);
  EXPECT_EQ(back.records, records);
  EXPECT_FALSE(back.damage);
  EXPECT_FALSE(back.writer_active);
}

TEST(RecordingFile, EventLosesOnlyItsTrailingNewline) {
  TempDir dir;
  const std::string path = dir.file("s.vrec");
  auto w = RecordingWriter::create(path, test_header(), manual_options());
  ASSERT_TRUE(w.ok());
  (*w)->event(kStart, "{\"a\":1}\n");
  (*w)->event(kStart, "{\"b\":2}");
  ASSERT_TRUE((*w)->close().ok());
  ReadBack back = read_all(path);
  ASSERT_EQ(back.records.size(), 2u);
  EXPECT_EQ(back.records[0].data, "{\"a\":1}");
  EXPECT_EQ(back.records[1].data, "{\"b\":2}");
}

TEST(RecordingFile, HeaderIsReadableJson) {
  TempDir dir;
  const std::string path = make_recording(dir, {});
  const std::string bytes = read_file(path);
  EXPECT_EQ(bytes.substr(0, 8), "VIGILREC");
  EXPECT_NE(bytes.find(R"("start":"2023-07-04T16:42:20.540000Z")"), std::string::npos) << bytes;
  EXPECT_NE(bytes.find(R"("user":"alice@goteleport.com")"), std::string::npos);
}

TEST(RecordingFile, EventsThatArriveLateAreWrittenInTimeOrder) {
  TempDir dir;
  const std::string path = dir.file("s.vrec");
  WriterOptions o = manual_options();
  int64_t now = kStart + 10 * kSec;
  o.clock = [&] { return now; };
  o.reorder_window_ns = 250 * kMs;
  o.flush_interval = std::chrono::milliseconds(0);
  auto w = RecordingWriter::create(path, test_header(), o);
  ASSERT_TRUE(w.ok());
  (*w)->output(now - 10 * kMs, "after");
  (*w)->event(now - 60 * kMs, "{\"late\":1}");  // the engine delivers ~50 ms late
  ASSERT_TRUE((*w)->close().ok());
  ReadBack back = read_all(path);
  ASSERT_EQ(back.records.size(), 2u);
  EXPECT_EQ(back.records[0].type, RecordType::event);
  EXPECT_EQ(back.records[1].data, "after");
}

TEST(RecordingFile, RecordLaterThanTheWindowIsKeptAndCounted) {
  TempDir dir;
  const std::string path = dir.file("s.vrec");
  auto w = RecordingWriter::create(path, test_header(), manual_options());
  ASSERT_TRUE(w.ok());
  (*w)->output(kStart + 2 * kSec, "first written");
  ASSERT_TRUE((*w)->flush().ok());
  (*w)->event(kStart + 1 * kSec, "{}");
  EXPECT_EQ((*w)->stats().late_records, 1u);
  ASSERT_TRUE((*w)->close().ok());
  ReadBack back = read_all(path);
  ASSERT_EQ(back.records.size(), 2u);
  EXPECT_EQ(back.records[1].time_ns, kStart + 1 * kSec);  // its exact time, in file order
  EXPECT_FALSE(back.damage);
}

TEST(RecordingFile, ManyChunks) {
  TempDir dir;
  const std::string path = dir.file("s.vrec");
  auto w = RecordingWriter::create(path, test_header(), manual_options(4096));
  ASSERT_TRUE(w.ok());
  std::vector<Record> expected;
  for (int i = 0; i < 20000; ++i) {
    const int64_t t = kStart + i * 37 * kMs;
    if (i % 10 == 0)
      expected.push_back(event(t, "{\"ei\":" + std::to_string(i) + "}"));
    else if (i % 997 == 0)
      expected.push_back(resize(t, 80 + i % 50, 24));
    else
      expected.push_back(
          output(t, "[" + std::to_string(i) + "] " + std::string(i % 90, 'x') + "\r\n"));
    append(**w, expected.back());
  }
  // One output larger than a chunk is split into records of chunk size.
  const std::string big(10000, 'b');
  (*w)->output(kStart + 20000 * 37 * kMs, big);
  ASSERT_TRUE((*w)->close().ok());
  const WriterStats stats = (*w)->stats();
  EXPECT_GT(stats.chunks, 100u);
  EXPECT_EQ(stats.records, expected.size() + 3);
  EXPECT_LT(stats.file_bytes, stats.raw_bytes / 3) << "repetitive text compresses";

  ReadBack back = read_all(path);
  EXPECT_FALSE(back.damage);
  ASSERT_EQ(back.records.size(), expected.size() + 3);
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), back.records.begin()));
  std::string tail;
  for (size_t i = expected.size(); i < back.records.size(); ++i) {
    EXPECT_LE(back.records[i].data.size(), 4096u);
    tail += back.records[i].data;
  }
  EXPECT_EQ(tail, big);
}

TEST(RecordingFile, IncompressibleOutputBarelyGrows) {
  TempDir dir;
  std::string noise;
  uint32_t x = 12345;
  for (int i = 0; i < 200000; ++i) {
    x = x * 1103515245 + 12345;
    noise += static_cast<char>(x >> 24);
  }
  const std::string path = make_recording(dir, {output(kStart, noise)});
  ReadBack back = read_all(path);
  ASSERT_EQ(back.records.size(), 1u);
  EXPECT_EQ(back.records[0].data, noise);
  const std::string bytes = read_file(path);
  EXPECT_LT(bytes.size(), noise.size() + noise.size() / 100 + 400);  // deflate's stored blocks
}

TEST(RecordingFile, ChunksShareOneCompressedStream) {
  // Flushing every second must not cost the compression of whole chunks:
  // a repeated line compresses against the chunks before it.
  TempDir dir;
  const std::string path = dir.file("s.vrec");
  auto w = RecordingWriter::create(path, test_header(), manual_options());
  ASSERT_TRUE(w.ok());
  const std::string line =
      "[ 42%] Building CXX object src/audit/CMakeFiles/vigil_audit.dir/json.cpp.o\r\n";
  for (int i = 0; i < 200; ++i) {
    (*w)->output(kStart + i * kSec, line);
    ASSERT_TRUE((*w)->flush().ok());
  }
  ASSERT_TRUE((*w)->close().ok());
  const WriterStats stats = (*w)->stats();
  EXPECT_EQ(stats.chunks, 200u);
  // Each chunk after the first: its 24-byte frame and a few bytes of deflate.
  EXPECT_LT(stats.file_bytes, 200 * (kFrameSize + 20) + 600) << stats.file_bytes;
  ReadBack back = read_all(path);
  EXPECT_EQ(back.records.size(), 200u);
  EXPECT_FALSE(back.damage);
}

// Builds a recording of `chunks` chunks of a few records each and returns
// each chunk's offset, the file size last.
std::vector<uint64_t> make_chunked(const std::string& path, int chunks,
                                   std::vector<Record>* per_chunk_records = nullptr) {
  auto w = RecordingWriter::create(path, test_header(), manual_options());
  EXPECT_TRUE(w.ok());
  std::vector<uint64_t> offsets = {(*w)->stats().file_bytes};
  for (int c = 0; c < chunks; ++c) {
    for (int i = 0; i < 5; ++i) {
      Record r = i == 2
                     ? event(kStart + (c * 10 + i) * kMs, "{\"n\":" + std::to_string(c) + "}")
                     : output(kStart + (c * 10 + i) * kMs,
                              "chunk " + std::to_string(c) + " line " + std::to_string(i) + "\r\n");
      append(**w, r);
      if (per_chunk_records) per_chunk_records->push_back(r);
    }
    EXPECT_TRUE((*w)->flush().ok());
    offsets.push_back((*w)->stats().file_bytes);
  }
  EXPECT_TRUE((*w)->close().ok());
  return offsets;
}

TEST(RecordingFile, CutAtEveryOffsetOfTheLastChunkKeepsEarlierChunks) {
  TempDir dir;
  std::vector<Record> records;
  const std::vector<uint64_t> offsets = make_chunked(dir.file("full.vrec"), 4, &records);
  const std::string full = read_file(dir.file("full.vrec"));
  ASSERT_EQ(full.size(), offsets.back());
  const uint64_t last = offsets[offsets.size() - 2];
  const std::vector<Record> before_last(records.begin(), records.end() - 5);

  const std::string cut_path = dir.file("cut.vrec");
  for (uint64_t cut = last; cut < full.size(); ++cut) {
    write_file(cut_path, std::string_view(full).substr(0, cut));
    ReadBack back = read_all(cut_path);
    ASSERT_EQ(back.records, before_last) << "cut at " << cut;
    if (cut == last) {
      EXPECT_FALSE(back.damage) << "a cut between chunks is a clean end";
      continue;
    }
    ASSERT_EQ(back.damage.kind, Damage::Kind::truncated) << "cut at " << cut;
    EXPECT_EQ(back.damage.offset, last) << "cut at " << cut;
    EXPECT_EQ(describe(cut_path, back.damage)
                  .rfind(cut_path + ": truncated at offset " + std::to_string(last), 0),
              0u);
  }
}

TEST(RecordingFile, FlippedByteInAMiddleChunkStopsThereNamingItsOffset) {
  TempDir dir;
  std::vector<Record> records;
  const std::vector<uint64_t> offsets = make_chunked(dir.file("full.vrec"), 5, &records);
  const std::string full = read_file(dir.file("full.vrec"));
  const uint64_t begin = offsets[2], end = offsets[3];  // the third chunk
  const std::vector<Record> before(records.begin(), records.begin() + 10);

  const std::string bad_path = dir.file("bad.vrec");
  for (uint64_t at = begin; at < end; ++at) {
    std::string bad = full;
    bad[at] = static_cast<char>(bad[at] ^ 0x20);
    write_file(bad_path, bad);
    ReadBack back = read_all(bad_path);
    ASSERT_EQ(back.records, before) << "flipped byte at " << at;
    ASSERT_EQ(back.damage.kind, Damage::Kind::corrupt) << "flipped byte at " << at;
    EXPECT_EQ(back.damage.offset, begin);
    const std::string message = describe(bad_path, back.damage);
    EXPECT_NE(message.find(bad_path), std::string::npos);
    EXPECT_NE(message.find("corrupt at offset " + std::to_string(begin)), std::string::npos)
        << message;
  }
}

TEST(RecordingFile, RandomDamageGivesAPrefixOfTheRecords) {
  // Whatever happens to the bytes after the header, a reader gives some
  // first records unchanged and then stops; it never invents a record.
  TempDir dir;
  std::vector<Record> records;
  make_chunked(dir.file("full.vrec"), 8, &records);
  const std::string full = read_file(dir.file("full.vrec"));
  const size_t header_end = full.find("VRCK");
  const std::string path = dir.file("bad.vrec");
  uint32_t x = 7;
  auto next = [&] { return x = x * 1103515245 + 12345, x >> 8; };
  for (int round = 0; round < 2000; ++round) {
    std::string bad = full;
    for (int flips = 1 + next() % 4; flips > 0; --flips)
      bad[header_end + next() % (bad.size() - header_end)] = static_cast<char>(next());
    if (next() % 3 == 0) bad.resize(header_end + next() % (bad.size() - header_end));
    write_file(path, bad);
    ReadBack back = read_all(path);
    ASSERT_LE(back.records.size(), records.size());
    ASSERT_TRUE(std::equal(back.records.begin(), back.records.end(), records.begin()))
        << "round " << round;
    // A clean end means the file is whole up to a chunk boundary.
    if (!back.damage) {
      ASSERT_EQ(full.compare(0, bad.size(), bad), 0) << "round " << round;
    }
  }
}

TEST(RecordingFile, DamagedHeaderIsAnErrorNamingTheFile) {
  TempDir dir;
  make_chunked(dir.file("full.vrec"), 1);
  const std::string full = read_file(dir.file("full.vrec"));
  const std::string path = dir.file("bad.vrec");
  for (size_t at : {size_t{8}, size_t{12}, size_t{16}, size_t{30}}) {
    std::string bad = full;
    bad[at] = static_cast<char>(bad[at] ^ 0x01);
    write_file(path, bad);
    auto reader = RecordingReader::open(path);
    ASSERT_FALSE(reader.ok()) << "flipped header byte " << at;
    EXPECT_EQ(reader.error().message.rfind(path + ": ", 0), 0u) << reader.error().message;
  }
  // A newer format version (with a valid checksum) is named as such.
  std::string newer = full;
  newer[8] = 2;
  const size_t json_len = get_u32(reinterpret_cast<const unsigned char*>(newer.data()) + 12);
  std::string crc;
  put_u32(crc, crc32_of(newer.substr(0, 16) + newer.substr(20, json_len)));
  newer.replace(16, 4, crc);
  write_file(path, newer);
  auto newer_reader = RecordingReader::open(path);
  ASSERT_FALSE(newer_reader.ok());
  EXPECT_EQ(newer_reader.error().message,
            path + ": recording format version 2 is not supported (this Vigil reads version 1)");

  write_file(path, full.substr(0, 25));
  auto cut = RecordingReader::open(path);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().message, path + ": truncated at offset 0 (inside the file header)");
}

TEST(RecordingFile, ForeignFilesAreRefusedByName) {
  TempDir dir;
  const std::string text = dir.file("notes.vrec");
  write_file(text, "{\"event\":\"session.start\"}\n");
  auto r = RecordingReader::open(text);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            text + ": not a Vigil recording (it does not start with \"VIGILREC\")");

  const std::string empty = dir.file("empty.vrec");
  write_file(empty, "");
  r = RecordingReader::open(empty);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(empty + ": empty"), std::string::npos);

  r = RecordingReader::open(dir.file("missing.vrec"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(dir.file("missing.vrec")), std::string::npos);
  EXPECT_EQ(r.error().err, ENOENT);

  r = RecordingReader::open(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not a regular file"), std::string::npos);
}

TEST(RecordingFile, NeverReplacesAnExistingFile) {
  TempDir dir;
  const std::string path = make_recording(dir, {output(kStart, "kept")});
  auto again = RecordingWriter::create(path, test_header(), manual_options());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().err, EEXIST);
  EXPECT_EQ(read_all(path).records.size(), 1u);
}

TEST(RecordingFile, ConcurrentWritersKeepEveryRecordInTimeOrder) {
  TempDir dir;
  const std::string path = dir.file("s.vrec");
  WriterOptions o;  // real clock, background flusher
  o.chunk_bytes = 4096;
  o.flush_interval = std::chrono::milliseconds(20);
  Header h = test_header();
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  h.start_ns = int64_t{ts.tv_sec} * kSec + ts.tv_nsec;
  auto w = RecordingWriter::create(path, h, o);
  ASSERT_TRUE(w.ok());
  constexpr int kEach = 20000;
  auto now = [] {
    timespec t{};
    clock_gettime(CLOCK_REALTIME, &t);
    return int64_t{t.tv_sec} * kSec + t.tv_nsec;
  };
  std::thread pty([&] {
    for (int i = 0; i < kEach; ++i) (*w)->output(now(), "o" + std::to_string(i) + "\r\n");
  });
  std::thread engine([&] {
    for (int i = 0; i < kEach; ++i) {
      (*w)->event(now(), "{\"ei\":" + std::to_string(i) + "}");
      if (i % 1000 == 0) (*w)->resize(now(), 80 + i / 1000, 24);
    }
  });
  pty.join();
  engine.join();
  ASSERT_TRUE((*w)->close().ok());
  EXPECT_GT((*w)->stats().chunks, 10u);

  ReadBack back = read_all(path);
  EXPECT_FALSE(back.damage);
  std::set<std::string> outputs, events;
  int resizes = 0;
  for (size_t i = 0; i < back.records.size(); ++i) {
    const Record& r = back.records[i];
    if (i > 0) {
      ASSERT_GE(r.time_ns, back.records[i - 1].time_ns) << "record " << i;
    }
    if (r.type == RecordType::output) outputs.insert(r.data);
    if (r.type == RecordType::event) events.insert(r.data);
    resizes += r.type == RecordType::resize;
  }
  EXPECT_EQ(outputs.size(), size_t{kEach});
  EXPECT_EQ(events.size(), size_t{kEach});
  EXPECT_EQ(resizes, kEach / 1000);
  EXPECT_TRUE(outputs.count("o19999\r\n"));
  EXPECT_TRUE(events.count("{\"ei\":0}"));
}

TEST(RecordingFile, BackgroundFlushMakesALiveSessionReadable) {
  TempDir dir;
  const std::string path = dir.file("s.vrec");
  WriterOptions o;
  o.flush_interval = std::chrono::milliseconds(50);
  o.reorder_window_ns = 0;
  auto w = RecordingWriter::create(path, test_header(), o);  // times in the past: settled
  ASSERT_TRUE(w.ok());
  (*w)->output(kStart + kMs, "prompt$ ");
  (*w)->event(kStart + 2 * kMs, "{}");
  ReadBack back;
  for (int i = 0; i < 100 && back.records.size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    back = read_all(path);
  }
  ASSERT_EQ(back.records.size(), 2u) << "the flusher wrote nothing within 2 s";
  EXPECT_TRUE(back.writer_active);
  EXPECT_FALSE(back.damage);

  // A chunk being appended right now (the first bytes of its frame are in
  // the file) is no damage while the writer holds the file.
  {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "VRCK\x01", 5), 5);
    ::close(fd);
  }
  back = read_all(path);
  EXPECT_EQ(back.records.size(), 2u);
  EXPECT_TRUE(back.writer_active);
  EXPECT_FALSE(back.damage);
}

// Many live recordings (a node with hundreds of sessions) are all flushed in
// the background by one thread, not a thread each; one closed meanwhile
// leaves the others flushed.
TEST(RecordingFile, ManyLiveRecordingsAreFlushedWithoutAThreadEach) {
  TempDir dir;
  auto threads = [] {
    size_t n = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
    return n;
  };
  WriterOptions o;
  o.flush_interval = std::chrono::milliseconds(30);
  o.reorder_window_ns = 0;
  constexpr int kWriters = 64;
  std::vector<std::unique_ptr<RecordingWriter>> writers;
  const size_t before = threads();
  for (int i = 0; i < kWriters; ++i) {
    auto w = RecordingWriter::create(dir.file(std::to_string(i) + ".vrec"), test_header(), o);
    ASSERT_TRUE(w.ok()) << w.error().message;
    (*w)->output(kStart + kMs, "session " + std::to_string(i));
    writers.push_back(std::move(*w));
  }
  // At most the one flush thread (started by the first writer of the process).
  EXPECT_LE(threads(), before + 1) << "a thread per live recording";
  ASSERT_TRUE(writers[7]->close().ok());
  writers[7].reset();
  auto all_flushed = [&] {
    for (int i = 0; i < kWriters; ++i)
      if (read_all(dir.file(std::to_string(i) + ".vrec")).records.size() != 1) return false;
    return true;
  };
  bool flushed = false;
  for (int i = 0; i < 200 && !(flushed = all_flushed()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(flushed) << "a live recording was not flushed within 4 s";
  for (auto& w : writers)
    if (w) EXPECT_TRUE(w->close().ok());
}

TEST(RecordingFile, WriterThatDiedLeavesItsCompleteChunks) {
  TempDir dir;
  const std::string path = dir.file("s.vrec");
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto w = RecordingWriter::create(path, test_header(), manual_options());
    if (!w) _exit(1);
    (*w)->output(kStart + kMs, "before the crash\r\n");
    if (!(*w)->flush()) _exit(1);
    (*w)->output(kStart + 2 * kMs, "never written");
    _exit(0);  // no close: the pending record dies with the process
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ReadBack back = read_all(path);
  EXPECT_FALSE(back.writer_active);
  EXPECT_FALSE(back.damage);
  ASSERT_EQ(back.records.size(), 1u);
  EXPECT_EQ(back.records[0].data, "before the crash\r\n");
}

TEST(RecordingFormat, VarintsAndZigzag) {
  for (uint64_t v :
       {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{1} << 35, ~uint64_t{0}}) {
    std::string s;
    put_varint(s, v);
    size_t pos = 0;
    uint64_t back = 0;
    ASSERT_TRUE(
        get_varint(reinterpret_cast<const unsigned char*>(s.data()), s.size(), &pos, &back));
    EXPECT_EQ(back, v);
    EXPECT_EQ(pos, s.size());
    pos = 0;
    if (s.size() > 1) {
      EXPECT_FALSE(
          get_varint(reinterpret_cast<const unsigned char*>(s.data()), s.size() - 1, &pos, &back));
    }
  }
  for (int64_t v : {int64_t{0}, int64_t{-1}, int64_t{1}, INT64_MIN, INT64_MAX})
    EXPECT_EQ(unzigzag(zigzag(v)), v);
  EXPECT_EQ(zigzag(-1), 1u);
  EXPECT_EQ(zigzag(1), 2u);
}

}  // namespace
}  // namespace vigil::recording
