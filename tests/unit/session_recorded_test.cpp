// The recorded-session unit without an engine (enhanced_recording off) and
// without root: what it writes when it opens, when a launch fails, when it
// finishes (once) or is dropped, and what reaches its recording. The
// engine's side (totals, leftovers, kill_all) is tests/root/session_root_test.cpp.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../support/memory_log.hpp"
#include "../support/temp_dir.hpp"
#include "auditlog/session_log.hpp"
#include "recording/reader.hpp"
#include "session/recorded_session.hpp"

namespace vigil::session {
namespace {

using Json = nlohmann::ordered_json;
using test::MemoryLog;

class RecordedSessionTest : public ::testing::Test {
 protected:
  Options options() const {
    Options o;
    o.meta.cluster_name = "c";
    o.meta.server_hostname = "node";
    o.meta.server_id = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
    o.meta.login = "vigiltest";
    o.meta.user = "alice@example.com";
    o.meta.remote_addr = "127.0.0.1:50000";
    o.data_dir = dir_.path();
    o.kinds = KindSet::all();
    return o;
  }
  std::unique_ptr<RecordedSession> open(Options o) {
    auto s = RecordedSession::open(log_, std::move(o));
    EXPECT_TRUE(s.ok()) << s.error().message;
    return s.ok() ? std::move(s.value()) : nullptr;
  }
  std::vector<recording::Record> records(const std::string& sid) const {
    auto reader = recording::RecordingReader::open(dir_.path() + "/log/records/" + sid + ".vrec");
    EXPECT_TRUE(reader.ok()) << reader.error().message;
    std::vector<recording::Record> out;
    if (!reader.ok()) return out;
    EXPECT_FALSE(reader->writer_active()) << "the recording was not closed";
    recording::Record r;
    while (reader->next(r)) out.push_back(r);
    EXPECT_FALSE(reader->damage()) << recording::describe(reader->path(), reader->damage());
    return out;
  }
  size_t count(const std::string& type) const { return log_.of(type).size(); }

  test::TempDir dir_;
  MemoryLog log_;
};

TEST_F(RecordedSessionTest, AFailedLaunchEndsTheSessionWithItsError) {
  Options o = options();
  o.command = {"no-such-command-vigil-unit"};
  o.exec_command = "no-such-command-vigil-unit";
  auto s = open(std::move(o));
  ASSERT_TRUE(s);
  LaunchSpec spec;
  spec.argv = {"no-such-command-vigil-unit"};
  auto launched = s->launch(spec);
  ASSERT_FALSE(launched.ok());
  EXPECT_EQ(launched.error().message, "no-such-command-vigil-unit: command not found");
  int status = s->wait();
  EXPECT_EQ(exit_code(status), 127) << "as a shell says not found";
  auto ending = s->finish(status);
  ASSERT_TRUE(ending.ok()) << ending.error().message;
  EXPECT_EQ(ending->leftovers, SessionSummary::Leftovers::none);

  EXPECT_EQ(log_.types(), (std::vector<std::string>{"session.start", "exec", "session.end"}));
  auto lines = log_.lines();
  EXPECT_EQ(lines[0].durability, auditlog::Durability::sync);
  EXPECT_EQ(lines[2].durability, auditlog::Durability::sync);
  EXPECT_FALSE(lines[0].event.contains("sealed")) << "no engine: nothing seals the session";
  EXPECT_EQ(lines[1].event["exit_code"], 127);
  Json end = lines[2].event;
  EXPECT_EQ(end["error"], "no-such-command-vigil-unit: command not found");
  EXPECT_EQ(end["enhanced_recording"], false);
  EXPECT_EQ(end["enhanced_recording_kinds"], Json::array());
  EXPECT_EQ(end["recorded_events"], Json({{"command", 0}, {"disk", 0}, {"network", 0}}));
  EXPECT_EQ(end["participants"], Json::array({"alice@example.com"}));
  EXPECT_EQ(end["addr.remote"], "127.0.0.1:50000");
  EXPECT_EQ(end["sid"], s->meta().sid);
  EXPECT_EQ(end["ei"], 2);

  // The recording has the same three events, and is closed.
  EXPECT_TRUE(s->recording_closed().ok());
  auto recorded = records(s->meta().sid);
  ASSERT_EQ(recorded.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(recorded[i].type, recording::RecordType::event);
    EXPECT_EQ(Json::parse(recorded[i].data), lines[i].event);
  }
}

TEST_F(RecordedSessionTest, FinishWritesOneSessionEndAndASecondFinishIsRefused) {
  auto s = open(options());
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->finish(0).ok());
  auto again = s->finish(0);
  EXPECT_FALSE(again.ok());
  s.reset();
  EXPECT_EQ(count("session.end"), 1u);
  EXPECT_FALSE(log_.of("session.end")[0].contains("error")) << "nothing failed";
}

TEST_F(RecordedSessionTest, ASessionDroppedUnfinishedStillEnds) {
  Options o = options();
  o.exec_command = "true";
  auto s = open(std::move(o));
  ASSERT_TRUE(s);
  std::string sid = s->meta().sid;
  std::string journal = auditlog::journal_dir(dir_.path()) + "/" + sid + ".json";
  struct stat st{};
  EXPECT_EQ(stat(journal.c_str(), &st), 0) << "a live session keeps its journal";
  s.reset();
  EXPECT_EQ(log_.types(), (std::vector<std::string>{"session.start", "session.end"}))
      << "never launched: no exec event";
  EXPECT_NE(stat(journal.c_str(), &st), 0) << "the journal goes with session.end";
  EXPECT_EQ(records(sid).size(), 2u);
}

TEST_F(RecordedSessionTest, TerminalOutputAndResizesAreRecordedOnAPty) {
  Options o = options();
  o.size = {132, 43};
  auto pty = term::Pty::open(o.size);
  ASSERT_TRUE(pty.ok()) << pty.error().message;
  o.pty.emplace(std::move(pty.value()));
  auto s = open(std::move(o));
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->interactive());
  ASSERT_NE(s->pty(), nullptr);
  s->output("hello\r\n");
  ASSERT_TRUE(s->resize({100, 30}).ok());
  auto now = term::window_size(s->pty()->master());
  ASSERT_TRUE(now);
  EXPECT_EQ(now->cols, 100);
  EXPECT_EQ(now->rows, 30);
  s->resized({90, 20});  // the relay resized the pty itself: the recording only
  ASSERT_TRUE(s->finish(0).ok());
  std::string sid = s->meta().sid;

  auto reader = recording::RecordingReader::open(dir_.path() + "/log/records/" + sid + ".vrec");
  ASSERT_TRUE(reader.ok());
  EXPECT_TRUE(reader->header().interactive);
  EXPECT_EQ(reader->header().cols, 132);
  EXPECT_EQ(reader->header().rows, 43);
  std::string output;
  std::vector<std::pair<int, int>> sizes;
  for (const auto& r : records(sid)) {
    if (r.type == recording::RecordType::output) output += r.data;
    if (r.type == recording::RecordType::resize) sizes.emplace_back(r.cols, r.rows);
  }
  EXPECT_EQ(output, "hello\r\n");
  EXPECT_EQ(sizes, (std::vector<std::pair<int, int>>{{100, 30}, {90, 20}}));
  EXPECT_EQ(log_.of("session.end")[0]["interactive"], true);
}

TEST_F(RecordedSessionTest, OutputWithoutAPtyIsNotRecorded) {
  auto s = open(options());
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->interactive());
  s->output("piped output is not a terminal's");
  EXPECT_FALSE(s->resize({100, 30}).ok());
  ASSERT_TRUE(s->finish(0).ok());
  for (const auto& r : records(s->meta().sid))
    EXPECT_EQ(r.type, recording::RecordType::event) << r.data;
  EXPECT_EQ(log_.of("session.end")[0]["interactive"], false);
}

TEST_F(RecordedSessionTest, HooksSeeEveryLineAndTheEndOnce) {
  Options o = options();
  std::vector<std::string> lines;
  int ended = 0;
  o.hooks.line = [&](int64_t, std::string_view line) { lines.emplace_back(line); };
  o.hooks.ended = [&](const audit::SessionEnd& end, const audit::SessionMeta& meta) {
    ++ended;
    EXPECT_EQ(meta.login, "vigiltest");
    EXPECT_FALSE(end.enhanced_recording);
  };
  auto s = open(std::move(o));
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->finish(0).ok());
  EXPECT_EQ(ended, 1);
  auto logged = log_.lines();
  ASSERT_EQ(lines.size(), logged.size());
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(Json::parse(lines[i]), logged[i].event);
}

TEST_F(RecordedSessionTest, ARecordingThatCannotBeCreatedOpensNothing) {
  Options o = options();
  o.data_dir = dir_.path() + "/file";
  { std::ofstream(o.data_dir) << "not a directory"; }
  auto s = RecordedSession::open(log_, std::move(o));
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(log_.lines().empty()) << "no session.start for a session that cannot be recorded";
}

}  // namespace
}  // namespace vigil::session
