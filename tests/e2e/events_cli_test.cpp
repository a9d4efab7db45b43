// End to end: where `vigil record` writes the audit log, and `vigil events`
// reading it back, as a user runs both (README: "Every session also goes to
// the audit log ... in the guide's layout under data_dir"; `vigil events`
// with --from, --type, --sid, --format, --after and its errors).
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "fixture.hpp"

namespace e2e {
namespace {

using json = nlohmann::ordered_json;

// The day file's name for an instant: "2026-11-27.00:00:00.log" (UTC).
std::string day_file(int64_t ns) {
  time_t t = static_cast<time_t>(ns / 1'000'000'000);
  tm utc{};
  gmtime_r(&t, &utc);
  char name[64];
  strftime(name, sizeof name, "%Y-%m-%d.00:00:00.log", &utc);
  return name;
}

class EventsCli : public VigilTest {
 protected:
  struct Session {
    Outcome outcome;
    Log log;  // the -o file
    std::string sid;
  };
  // `vigil record -o FILE --events command CMD...`, checked to have worked.
  Session record_session(const std::string& name, const std::vector<std::string>& command) {
    Session s;
    const std::string file = path(name + ".json");
    s.outcome = record({"-o", file, "--events", "command"}, command);
    EXPECT_EQ(s.outcome.status, 0) << s.outcome.err;
    s.log = read_log(file);
    EXPECT_GE(s.log.events.size(), 3u) << "start, a command, end";
    if (!s.log.events.empty()) s.sid = s.log.events[0].value("sid", "");
    return s;
  }
  Outcome events(std::vector<std::string> args) const {
    args.insert(args.begin(), {kVigil, "events", "-c", config()});
    return run({.argv = args});
  }
  // Every line `vigil events` prints for `args`, following "more:" lines
  // by running the command they print, until there is no more.
  std::vector<std::string> all_pages(const std::vector<std::string>& args, int* pages) const {
    std::vector<std::string> lines;
    Outcome o = events(args);
    *pages = 1;
    for (;;) {
      EXPECT_EQ(o.status, 0) << o.err;
      for (auto& l : split_lines(o.out)) lines.push_back(l);
      const size_t more = o.err.find("more: vigil events ");
      if (more == std::string::npos || *pages > 100) break;
      std::string command = o.err.substr(more + 6);
      command = command.substr(0, command.find('\n'));
      EXPECT_NE(command.find(" --after "), std::string::npos) << command;
      // As printed, with this build's binary for "vigil".
      o = run({.argv = {"/bin/sh", "-c", kVigil + command.substr(5)}});
      ++*pages;
    }
    return lines;
  }
};

}  // namespace

TEST_F(EventsCli, RecordWritesTheAuditLogUnderDataDirAndEventsReadsItBack) {
  REQUIRE_ROOT();
  const int64_t before = now_ns();
  Session s = record_session("one", {"/bin/echo", "into-the-log"});
  const int64_t after = now_ns();
  ASSERT_FALSE(s.log.events.empty());
  const std::string uuid = host_uuid();
  ASSERT_TRUE(is_uuid(uuid)) << uuid;

  // <data_dir>/log/<server-uuid>/<day>.log: the day of the session, UTC.
  const std::string server_dir = data_dir() + "/log/" + uuid;
  std::vector<std::string> days;
  for (auto& e : std::filesystem::directory_iterator(server_dir))
    days.push_back(e.path().filename());
  ASSERT_EQ(days.size(), 1u) << "one session, one day file";
  EXPECT_TRUE(days[0] == day_file(before) || days[0] == day_file(after)) << days[0];
  Log day = read_log(server_dir + "/" + days[0]);
  EXPECT_EQ(day.lines, s.log.lines) << "the audit log and -o differ";

  // events.log -> <server-uuid>/<today>
  const std::string link = data_dir() + "/log/events.log";
  struct stat st{};
  ASSERT_EQ(lstat(link.c_str(), &st), 0) << link;
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(std::filesystem::read_symlink(link).string(), uuid + "/" + days[0]);
  EXPECT_EQ(read_log(link).lines, s.log.lines);
  // Nothing else was written beside data_dir/log (e.g. in the cwd).
  EXPECT_FALSE(file_exists(dir_ + "/log"));

  // And `vigil events` gives the same lines back.
  Outcome back = events({"--sid", s.sid, "--format", "json"});
  ASSERT_EQ(back.status, 0) << back.err;
  EXPECT_EQ(split_lines(back.out), s.log.lines);
  EXPECT_EQ(back.err, "");
}

TEST_F(EventsCli, FromTypeSidAndFormatSelect) {
  REQUIRE_ROOT();
  Session a = record_session("a", {"/bin/echo", "session-a"});
  Session b = record_session("b", {"/bin/echo", "session-b"});
  ASSERT_NE(a.sid, b.sid);
  const size_t total = a.log.lines.size() + b.log.lines.size();

  // --from -15m: both sessions, oldest first.
  Outcome recent = events({"--from", "-15m", "--format", "json"});
  ASSERT_EQ(recent.status, 0) << recent.err;
  auto lines = split_lines(recent.out);
  std::vector<std::string> both = a.log.lines;
  both.insert(both.end(), b.log.lines.begin(), b.log.lines.end());
  EXPECT_EQ(lines.size(), total);
  EXPECT_EQ(lines, both);
  EXPECT_EQ(recent.err, "");

  // A range that holds nothing: after now, and before the sessions.
  Outcome future = events({"--from", "2099-01-01", "--format", "json"});
  EXPECT_EQ(future.status, 0) << future.err;
  EXPECT_EQ(future.out, "");
  Outcome old = events({"--to", "-15m", "--format", "json"});
  EXPECT_EQ(old.status, 0) << old.err;
  EXPECT_EQ(old.out, "");

  // --type: only those types, from both sessions.
  Outcome commands = events({"--type", "session.command", "--format", "json"});
  ASSERT_EQ(commands.status, 0) << commands.err;
  auto command_lines = parse_log(commands.out);
  EXPECT_EQ(command_lines.events.size(), a.log.count("session.command") + b.log.count("session.command"));
  for (const auto& e : command_lines.events) EXPECT_EQ(e["event"], "session.command");
  Outcome ends = events({"--type", "session.start,session.end", "--format", "json"});
  ASSERT_EQ(ends.status, 0) << ends.err;
  EXPECT_EQ(parse_log(ends.out).count("session.start"), 2u);
  EXPECT_EQ(parse_log(ends.out).count("session.end"), 2u);
  EXPECT_EQ(parse_log(ends.out).events.size(), 4u);

  // --sid: one session, exactly its lines.
  Outcome only_b = events({"--sid", b.sid, "--format", "json"});
  ASSERT_EQ(only_b.status, 0) << only_b.err;
  EXPECT_EQ(split_lines(only_b.out), b.log.lines);

  // --format text (the default): one line per event, for people.
  Outcome text = events({"--sid", a.sid});
  ASSERT_EQ(text.status, 0) << text.err;
  auto text_lines = split_lines(text.out);
  ASSERT_EQ(text_lines.size(), a.log.lines.size());
  for (const auto& l : text_lines) EXPECT_NE(l.front(), '{') << "not text: " << l;
  bool saw_echo = false;
  for (const auto& l : text_lines)
    if (l.find("session.command") != std::string::npos &&
        l.find("/bin/echo session-a") != std::string::npos)
      saw_echo = true;
  EXPECT_TRUE(saw_echo) << text.out;
  EXPECT_EQ(text.out.find("session-b"), std::string::npos);
}

TEST_F(EventsCli, AfterContinuesPageByPageUntilTheEnd) {
  REQUIRE_ROOT();
  Session a = record_session("a", {"/bin/sh", "-c", "/bin/true 1; /bin/true 2; /bin/true 3"});
  Session b = record_session("b", {"/bin/echo", "second"});
  std::vector<std::string> everything = a.log.lines;
  everything.insert(everything.end(), b.log.lines.begin(), b.log.lines.end());
  ASSERT_GE(everything.size(), 9u);

  int pages = 0;
  auto paged = all_pages({"--from", "-15m", "--limit", "2", "--format", "json"}, &pages);
  EXPECT_EQ(paged, everything) << "pages lost or repeated events";
  // Two a page (a last page may come back empty when the one before was full).
  EXPECT_GE(pages, static_cast<int>((everything.size() + 1) / 2));
  EXPECT_LE(pages, static_cast<int>(everything.size()) / 2 + 1);

  // Newest first, with a filter, paged the same way.
  auto desc = all_pages({"--type", "session.command", "--order", "desc", "--limit", "1",
                         "--format", "json"}, &pages);
  std::vector<std::string> commands;
  for (size_t i = 0; i < everything.size(); ++i)
    if (parse_log(everything[i] + "\n").events[0]["event"] == "session.command")
      commands.push_back(everything[i]);
  std::reverse(commands.begin(), commands.end());
  EXPECT_EQ(desc, commands);
}

TEST_F(EventsCli, BadArgumentsSayWhatIsWrong) {
  REQUIRE_ROOT();
  record_session("a", {"/bin/true"});
  struct Case {
    std::vector<std::string> args;
    std::string says;
  } cases[] = {
      {{"--from", "yesterday"}, "vigil events: --from: "},
      {{"--to", "2026-13-45"}, "vigil events: --to: "},
      {{"--from", "2026-01-02", "--to", "2026-01-01"}, "is after --to"},
      {{"--type", "session.command,,session.end"}, "--type: empty event type"},
      {{"--after", "not-a-continuation-key"}, "vigil events: --after: "},
      {{"--limit", "0"}, "--limit"},
      {{"--order", "sideways"}, "--order"},
      {{"--format", "xml"}, "--format"},
      {{"--no-such-option"}, "--no-such-option"},
  };
  for (const auto& c : cases) {
    Outcome o = events(c.args);
    SCOPED_TRACE(c.args[0] + (c.args.size() > 1 ? " " + c.args[1] : ""));
    EXPECT_NE(o.status, 0);
    EXPECT_THAT(o.err, ::testing::HasSubstr(c.says));
    EXPECT_EQ(o.out, "") << "printed results anyway";
  }
  // A data_dir without a log is an error that names it, not an empty result.
  Outcome none = run({.argv = {kVigil, "events", "--data-dir", path("nothing-here")}});
  EXPECT_NE(none.status, 0) << none.out;
  EXPECT_THAT(none.err, ::testing::HasSubstr("no audit log in " + path("nothing-here")));
}

}  // namespace e2e
