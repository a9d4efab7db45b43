// log::write under systemd: a priority prefix and one line a message, only
// when stderr is the stream JOURNAL_STREAM names.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/log.hpp"

using namespace vigil;

namespace {

// What log::write puts on fd 2 (a pipe for the test's duration).
std::string captured(log::Level level, std::string_view message, bool as_journal) {
  int p[2];
  EXPECT_EQ(pipe(p), 0);
  int saved = dup(2);
  dup2(p[1], 2);
  struct stat st{};
  fstat(2, &st);
  std::string stream = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  if (as_journal) setenv("JOURNAL_STREAM", stream.c_str(), 1);
  else setenv("JOURNAL_STREAM", "1:2", 1);  // another stream: not ours
  log::write(level, message);
  unsetenv("JOURNAL_STREAM");
  dup2(saved, 2);
  close(saved);
  close(p[1]);
  std::string out(4096, '\0');
  ssize_t n = read(p[0], out.data(), out.size());
  close(p[0]);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

TEST(LogJournal, UnderTheJournalEachMessageIsOneLineWithItsPriority) {
  EXPECT_EQ(captured(log::Level::warn, "disk\nfull", true), "<4>vigil: warning: disk\\nfull\n");
  EXPECT_EQ(captured(log::Level::error, "x", true), "<3>vigil: error: x\n");
}

TEST(LogJournal, ElsewhereTheLineIsAsBefore) {
  EXPECT_EQ(captured(log::Level::warn, "disk full", false), "vigil: warning: disk full\n");
  EXPECT_FALSE(log::stderr_is_journal());
}

}  // namespace
