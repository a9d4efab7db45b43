// Random version-4 UUIDs used as event uids.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "audit/uuid.hpp"

namespace vigil::audit {
namespace {

bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// 8-4-4-4-12 lowercase hex, version nibble 4, variant bits 10 (8, 9, a or b).
void expect_v4_uuid(const std::string& id) {
  ASSERT_EQ(id.size(), 36u) << id;
  for (size_t i = 0; i < id.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23)
      EXPECT_EQ(id[i], '-') << id;
    else
      EXPECT_TRUE(is_lower_hex(id[i])) << id;
  }
  EXPECT_EQ(id[14], '4') << id;
  EXPECT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b') << id;
}

TEST(AuditUuid, FormatVersionAndVariant) {
  for (int i = 0; i < 1000; ++i) expect_v4_uuid(new_uuid());
}

TEST(AuditUuid, UniqueOverTenThousand) {
  std::set<std::string> seen;
  for (int i = 0; i < 10'000; ++i) seen.insert(new_uuid());
  EXPECT_EQ(seen.size(), 10'000u);
}

TEST(AuditUuid, RandomBitsVary) {
  // Every non-fixed hex position takes many values over 1000 ids: the 122
  // random bits are all used.
  std::vector<std::set<char>> values(36);
  for (int i = 0; i < 1000; ++i) {
    const std::string id = new_uuid();
    for (size_t p = 0; p < id.size(); ++p) values[p].insert(id[p]);
  }
  for (size_t p = 0; p < 36; ++p) {
    if (p == 8 || p == 13 || p == 18 || p == 23 || p == 14) continue;
    EXPECT_EQ(values[p].size(), p == 19 ? 4u : 16u) << "position " << p;
  }
}

TEST(AuditUuid, AppendKeepsThePrefix) {
  std::string out = "uid=";
  append_uuid(out);
  ASSERT_EQ(out.size(), 40u);
  EXPECT_EQ(out.substr(0, 4), "uid=");
  expect_v4_uuid(out.substr(4));
}

TEST(AuditUuid, ThreadsDoNotRepeatEachOther) {
  constexpr int kThreads = 4, kEach = 2500;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&ids, t] {
      for (int i = 0; i < kEach; ++i) ids[t].push_back(new_uuid());
    });
  for (auto& th : threads) th.join();
  std::set<std::string> seen;
  for (const auto& list : ids) seen.insert(list.begin(), list.end());
  EXPECT_EQ(seen.size(), static_cast<size_t>(kThreads * kEach));
}

TEST(AuditUuid, ForkedChildDoesNotRepeatTheParent) {
  (void)new_uuid();  // the parent's generator is seeded before the fork
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string id = new_uuid();
    _exit(write(fds[1], id.data(), id.size()) == 36 ? 0 : 1);
  }
  const std::string parent_id = new_uuid();
  char buf[36];
  ASSERT_EQ(read(fds[0], buf, sizeof buf), 36);
  int status = 0;
  waitpid(child, &status, 0);
  close(fds[0]);
  close(fds[1]);
  EXPECT_NE(std::string(buf, 36), parent_id);
}

}  // namespace
}  // namespace vigil::audit
