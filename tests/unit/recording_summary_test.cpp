// What `vigil recordings` lists: a summary per recording (counts from
// session.end, or counted when a session has none yet), and finding a
// recording by session id, prefix or path.
#include <gtest/gtest.h>

#include "../recording/test_util.hpp"
#include "audit/encode.hpp"
#include "recording/store.hpp"
#include "recording/summary.hpp"

namespace vigil::recording {
namespace {

using namespace testing;

audit::SessionMeta meta() {
  audit::SessionMeta m;
  m.cluster_name = "purple";
  m.server_id = test_header().server_id;
  m.sid = test_header().sid;
  m.login = "ec2-user";
  m.user = "alice@goteleport.com";
  return m;
}

std::string command_json(int64_t t, const char* path) {
  Event ev;
  ev.time_ns = t;
  ev.process.pid = 42;
  ev.process.program = "ls";
  CommandEvent cmd;
  cmd.path = path;
  ev.body = cmd;
  std::string out;
  audit::encode_event(ev, meta(), 1, "9b825e22-744d-4130-94c5-dea49198ae3d", out);
  return out;
}

std::string disk_json(int64_t t) {
  Event ev;
  ev.time_ns = t;
  DiskEvent disk;
  disk.path = "/etc/hosts";
  ev.body = disk;
  std::string out;
  audit::encode_event(ev, meta(), 2, "9b825e22-744d-4130-94c5-dea49198ae3d", out);
  return out;
}

std::string end_json(int64_t t, uint64_t commands, uint64_t disks, bool enhanced = true) {
  audit::SessionEnd end;
  end.time_ns = end.stop_ns = t;
  end.start_ns = kStart;
  end.interactive = true;
  end.enhanced_recording = enhanced;
  end.recorded[Kind::command] = commands;
  end.recorded[Kind::disk] = disks;
  end.kinds = KindSet::all();
  std::string out;
  audit::encode_session_end(end, meta(), 9, "83e67464-a93a-4c7c-8ce6-5a3d8802c3b2", out);
  return out;
}

TEST(RecordingSummary, EndedSessionTakesCountsFromSessionEnd) {
  TempDir dir;
  const std::string path = make_recording(
      dir,
      {
          output(kStart + kSec, "$ ls\r\n"),
          event(kStart + 2 * kSec, command_json(kStart + 2 * kSec, "/bin/ls")),
          event(kStart + 3 * kSec, disk_json(kStart + 3 * kSec)),
          output(kStart + 4 * kSec, "a b\r\n"),
          // The audit log also wrote events this recording missed: session.end is the authority.
          event(kStart + 65 * kSec, end_json(kStart + 65 * kSec, 7, 40)),
      });
  auto s = summarize(path);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->header.sid, test_header().sid);
  EXPECT_TRUE(s->ended);
  EXPECT_FALSE(s->in_progress);
  EXPECT_TRUE(s->enhanced);
  EXPECT_EQ(s->duration_ns(), 65 * kSec);
  EXPECT_EQ(s->events[Kind::command], 7u);
  EXPECT_EQ(s->events[Kind::disk], 40u);
  EXPECT_EQ(s->events[Kind::network], 0u);
  EXPECT_EQ(s->output_bytes, 11u);
  EXPECT_FALSE(s->damage);
}

TEST(RecordingSummary, SessionWithoutEndIsCountedAndInProgressWhileWritten) {
  TempDir dir;
  const std::string path = dir.file("live.vrec");
  auto w = RecordingWriter::create(path, test_header(), manual_options());
  ASSERT_TRUE(w.ok());
  (*w)->event(kStart + kSec, command_json(kStart + kSec, "/bin/ls"));
  (*w)->event(kStart + 2 * kSec, command_json(kStart + 2 * kSec, "/bin/cat"));
  (*w)->event(kStart + 3 * kSec, disk_json(kStart + 3 * kSec));
  (*w)->output(kStart + 4 * kSec, "x");
  ASSERT_TRUE((*w)->flush().ok());

  auto s = summarize(path);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->in_progress);
  EXPECT_FALSE(s->ended);
  EXPECT_TRUE(s->enhanced);
  EXPECT_EQ(s->events[Kind::command], 2u);
  EXPECT_EQ(s->events[Kind::disk], 1u);
  EXPECT_EQ(s->duration_ns(), 4 * kSec);

  ASSERT_TRUE((*w)->close().ok());
  s = summarize(path);
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->in_progress);  // closed without session.end: interrupted
  EXPECT_FALSE(s->ended);
}

TEST(RecordingSummary, PlainSessionIsNotEnhanced) {
  TempDir dir;
  const std::string path = make_recording(dir, {output(kStart + kSec, "hello\r\n")});
  auto s = summarize(path);
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->enhanced);
  EXPECT_EQ(s->events.total(), 0u);
}

TEST(RecordingSummary, DamageIsReportedWithWhatCouldBeRead) {
  TempDir dir;
  const std::string path =
      make_recording(dir, {
                              event(kStart + kSec, command_json(kStart + kSec, "/bin/ls")),
                              output(kStart + 2 * kSec, "x"),
                          });
  std::string bytes = read_file(path);
  const uint64_t chunk = bytes.find("VRCK");
  bytes.resize(bytes.size() - 3);
  write_file(path, bytes);
  auto s = summarize(path);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->damage.kind, Damage::Kind::truncated);
  EXPECT_EQ(s->damage.offset, chunk);
  EXPECT_EQ(s->events.total(), 0u);
}

TEST(RecordingStore, FindsBySessionIdPrefixOrPath) {
  TempDir dir;
  ASSERT_TRUE(prepare_records_dir(dir.path()).ok());
  EXPECT_EQ(records_dir(dir.path()), dir.path() + "/log/records");
  const std::string a = recording_path(dir.path(), "86aca627-971d-4883-854d-d309ba04c658");
  const std::string b = recording_path(dir.path(), "86b00000-0000-4000-8000-000000000000");
  write_file(a, "x");
  write_file(b, "x");
  write_file(records_dir(dir.path()) + "/notes.txt", "not a recording");

  auto found = find_recording(dir.path(), "86aca627-971d-4883-854d-d309ba04c658");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, a);
  found = find_recording(dir.path(), "86ac");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, a);
  found = find_recording(dir.path(), "86");
  ASSERT_FALSE(found.ok());
  EXPECT_NE(found.error().message.find("ambiguous"), std::string::npos);
  found = find_recording(dir.path(), "ffff");
  ASSERT_FALSE(found.ok());
  EXPECT_NE(
      found.error().message.find("no recording of session ffff in " + records_dir(dir.path())),
      std::string::npos);
  found = find_recording(dir.path(), "./elsewhere.vrec");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, "./elsewhere.vrec");

  auto all = list_recordings(dir.path());
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (std::vector<std::string>{a, b}));
  auto none = list_recordings(dir.file("nothing-here"));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

}  // namespace
}  // namespace vigil::recording
