// Local account lookups (engine/account.hpp), as the SSH node makes them
// from many connection threads at once.
#include "engine/account.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

namespace vigil {
namespace {

TEST(Account, RootAndNobodyAreAsThePasswdFileSays) {
  auto root = credentials_for("root");
  ASSERT_TRUE(root) << root.error().message;
  EXPECT_EQ(root->uid, 0u);
  EXPECT_EQ(root->gid, 0u);
  EXPECT_EQ(root->name, "root");
  EXPECT_EQ(root->home, "/root");
  EXPECT_FALSE(root->shell.empty());
  ASSERT_FALSE(root->groups.empty());
  EXPECT_EQ(root->groups[0], 0u);  // getgrouplist puts the primary group first

  auto nobody = credentials_for("nobody");
  ASSERT_TRUE(nobody) << nobody.error().message;
  EXPECT_EQ(nobody->uid, 65534u);
  EXPECT_EQ(nobody->name, "nobody");
}

TEST(Account, UnknownLoginSaysSo) {
  auto none = credentials_for("vigil-no-such-user-x9");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message, "no such user: vigil-no-such-user-x9");
}

TEST(Account, CurrentIsTheRealUid) {
  auto me = current_credentials();
  ASSERT_TRUE(me) << me.error().message;
  EXPECT_EQ(me->uid, getuid());
}

// getpwnam's one static entry would let a thread read another's answer;
// each thread here must always see its own account.
TEST(Account, ConcurrentLookupsEachGetTheirOwnAccount) {
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([t, &wrong] {
      const char* login = t % 2 ? "root" : "nobody";
      const uid_t uid = t % 2 ? 0 : 65534;
      for (int i = 0; i < 2000; ++i) {
        auto c = credentials_for(login);
        if (!c || c->uid != uid || c->name != login) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace vigil
