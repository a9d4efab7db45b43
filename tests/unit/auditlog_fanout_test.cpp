// Several audit stores as one (audit_events_uri is a list): every event to
// each, searches from the first, a bad line stored nowhere, a failing
// store's error returned.
#include <gtest/gtest.h>

#include "auditlog/fanout_store.hpp"
#include "auditlog/memory_store.hpp"

namespace vigil::auditlog {
namespace {

std::string line(int n) {
  return "{\"event\":\"x\",\"time\":\"2026-11-28T10:00:0" + std::to_string(n) + "Z\",\"n\":" +
         std::to_string(n) + "}\n";
}

TEST(FanoutAuditStore, EveryEventGoesToEachAndSearchesReadTheFirst) {
  auto first = std::make_shared<MemoryAuditStorage>();
  auto second = std::make_shared<MemoryAuditStorage>();
  std::vector<std::unique_ptr<AuditStore>> stores;
  stores.push_back(MemoryAuditStore::open(first));
  stores.push_back(MemoryAuditStore::open(second));
  FanoutAuditStore fan(std::move(stores));
  ASSERT_TRUE(fan.emit(line(1), Durability::sync).ok());
  const std::string l2 = line(2), l3 = line(3);
  std::vector<std::string_view> batch = {l2, l3};
  ASSERT_TRUE(fan.append(batch).ok());
  ASSERT_TRUE(fan.flush().ok());
  for (auto& storage : {first, second}) {
    auto page = MemoryAuditStore::open(storage)->search(Query{});
    ASSERT_TRUE(page.ok());
    EXPECT_EQ(page->lines.size(), 3u);
  }
  // Searches read the first: an event only in the second is not found.
  ASSERT_TRUE(MemoryAuditStore::open(second)->emit(line(4), Durability::sync).ok());
  auto page = fan.search(Query{});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->lines.size(), 3u);
  // A bad line in a batch: stored in none.
  std::vector<std::string_view> bad = {l2, "{\"a\":1}"};
  auto r = fan.append(bad, Durability::sync);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::invalid_argument);
  EXPECT_EQ(MemoryAuditStore::open(first)->search(Query{})->lines.size(), 3u);
  EXPECT_EQ(MemoryAuditStore::open(second)->search(Query{})->lines.size(), 4u);
}

TEST(FanoutAuditStore, AFullSecondStoreFailsTheAppend) {
  auto first = std::make_shared<MemoryAuditStorage>();
  auto tiny = std::make_shared<MemoryAuditStorage>(10);  // holds nothing
  std::vector<std::unique_ptr<AuditStore>> stores;
  stores.push_back(MemoryAuditStore::open(first));
  stores.push_back(MemoryAuditStore::open(tiny));
  FanoutAuditStore fan(std::move(stores));
  auto r = fan.emit(line(1), Durability::sync);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::resource_exhausted);
}

}  // namespace
}  // namespace vigil::auditlog
