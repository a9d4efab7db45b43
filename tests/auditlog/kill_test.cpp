// kill -9 at random moments: a writer process (log_writer.cpp) appends
// events, is killed with SIGKILL, restarted (it resumes appending to the
// same day file), again and again. Afterwards every line of the log must
// be a whole JSON event, and every event the writer saw acknowledged (a
// sync emit that returned success) must be in the log.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include "auditlog/file_log.hpp"
#include "../support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kServer = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
constexpr int kRounds = 20;

using vigil::test::TempDir;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs the writer for `run_for`, kills it with SIGKILL and returns what it
// printed: the ei of each acknowledged event, one a line.
std::string run_and_kill(const std::string& data_dir, uint64_t first_ei,
                         std::chrono::milliseconds run_for) {
  int out[2];
  if (pipe(out) != 0) return "";
  const std::string first = std::to_string(first_ei);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    execl(VIGIL_AUDITLOG_WRITER, VIGIL_AUDITLOG_WRITER, data_dir.c_str(), kServer, first.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string printed;
  char buf[4096];
  const auto kill_at = Clock::now() + run_for;
  bool killed = false;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(kill_at - Clock::now()).count();
    if (!killed && left <= 0) {
      kill(pid, SIGKILL);
      killed = true;
    }
    pollfd p{out[0], POLLIN, 0};
    poll(&p, 1, killed ? -1 : static_cast<int>(std::max<int64_t>(left, 0)));
    if (!(p.revents & (POLLIN | POLLHUP))) continue;
    const ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) break;  // the writer is gone
    printed.append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the writer ended on its own (status " << status << ")";
  return printed;
}

TEST(AuditlogKill, AcknowledgedEventsSurviveSigkill) {
  TempDir dir;
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> run_ms(5, 120);
  SCOPED_TRACE("seed " + std::to_string(seed));

  const fs::path server_dir = fs::path(dir.path()) / "log" / kServer;
  std::set<uint64_t> acknowledged;
  int torn_tails = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::string printed = run_and_kill(dir.path(), uint64_t(round) * 1'000'000'000,
                                             std::chrono::milliseconds(run_ms(rng)));
    // The last number may be cut by the kill; it was acknowledged anyway,
    // but only whole lines count.
    std::istringstream in(printed);
    for (std::string l; std::getline(in, l);)
      if (!in.eof()) acknowledged.insert(std::stoull(l));
    for (const auto& f : fs::directory_iterator(server_dir)) {
      const std::string text = read_file(f.path());
      if (!text.empty() && text.back() != '\n') ++torn_tails;
    }
  }
  // Whether a kill tore a line depends on where it struck; make sure the
  // repair is exercised every run: a line cut short, as a write() stopped
  // by SIGKILL leaves it, at the end of today's file (events.log links it).
  const fs::path today = fs::path(dir.path()) / "log" / "events.log";
  ASSERT_TRUE(fs::exists(today)) << "the writer made no events.log";
  {
    std::ofstream torn(today, std::ios::binary | std::ios::app);
    torn << "{\"ei\":4242424242,\"event\":\"session.disk\",\"path\":\"/torn-by-the-kill";
  }
  {
    const std::string text = read_file(today);
    ASSERT_FALSE(text.empty());
    ASSERT_NE(text.back(), '\n') << "the tail is not torn";
  }
  // A writer that ends cleanly, as the next start of the node: it cuts a
  // torn tail the last kill left before it appends.
  {
    vigil::auditlog::FileLogOptions o;
    o.data_dir = dir.path();
    o.server_uuid = kServer;
    auto log = vigil::auditlog::FileLog::open(o);
    ASSERT_TRUE(log) << log.error().message;
    ASSERT_TRUE((*log)->emit("{\"event\":\"test.done\",\"time\":\"2026-01-01T00:00:00Z\"}\n",
                             vigil::auditlog::Durability::sync));
  }
  std::cout << "[ info     ] " << kRounds << " kills, " << acknowledged.size()
            << " acknowledged events, " << torn_tails << " torn tails seen after a kill\n";
  ASSERT_GT(acknowledged.size(), 0u);

  std::set<uint64_t> logged;
  size_t lines = 0;
  for (const auto& f : fs::directory_iterator(server_dir)) {
    const std::string text = read_file(f.path());
    ASSERT_TRUE(text.empty() || text.back() == '\n') << f.path() << " ends in a torn line";
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
      ++lines;
      nlohmann::json ev = nlohmann::json::parse(l, nullptr, false);
      ASSERT_TRUE(ev.is_object()) << f.path() << ": not a whole event: " << l.substr(0, 200);
      if (ev.contains("ei")) logged.insert(ev["ei"].get<uint64_t>());
    }
    EXPECT_EQ(text.find("/torn-by-the-kill"), std::string::npos) << f.path() << " kept the torn line";
  }
  EXPECT_EQ(logged.count(4242424242u), 0u);
  {
    // The clean writer's event is the last line of today's file.
    const std::string text = read_file(today);
    const size_t last = text.rfind('\n', text.size() - 2);
    EXPECT_NE(text.find("test.done", last == std::string::npos ? 0 : last), std::string::npos)
        << "the line appended after the repair is not the last one";
  }
  size_t missing = 0;
  for (uint64_t ei : acknowledged)
    if (!logged.count(ei) && ++missing <= 5) ADD_FAILURE() << "acknowledged ei " << ei << " lost";
  EXPECT_EQ(missing, 0u);
  std::cout << "[ info     ] " << lines << " lines in the log, all whole\n";
}

}  // namespace
