// Events per second ingested into the PostgreSQL audit store, as the auth
// service ingests them: 10 simulated nodes, each a thread handing the store
// sync batches of a relay's size (Durability::sync: each returns once its
// events are committed), into one PgAuditStore, against a server with
// fsync and synchronous_commit on. The baseline, measured in the same run
// on the same server: one INSERT and one commit per event on one connection
// (what an unbatched store would do). Prints both and their ratio.
//
//   pg_ingest_bench [SECONDS]   (default 5; its own server on port 31510)
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench_events.hpp"
#include "pg/pg.hpp"
#include "pg/pg_audit_store.hpp"
#include "../tests/support/postgres_server.hpp"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;

constexpr int kNodes = 10;
constexpr size_t kBatch = 256;  // events per relay batch

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 5;
  std::string error;
  auto* server = test::PostgresServer::shared(31510, &error, /*fsync=*/true);
  if (!server) {
    std::fprintf(stderr, "pg_ingest_bench: %s\n", error.c_str());
    return 1;
  }
  const std::string uri = server->uri(server->create_database("bench"));
  const auto lines = bench::disk_event_lines();

  pg::PgAuditOptions o;
  o.uri = uri;
  auto store = pg::PgAuditStore::open(o);
  if (!store) {
    std::fprintf(stderr, "pg_ingest_bench: %s\n", store.error().message.c_str());
    return 1;
  }

  // Baseline: one INSERT, one commit (fsync) per event.
  double baseline = 0;
  {
    auto c = pg::Conn::open(uri, "baseline");
    if (!c) return std::fprintf(stderr, "%s\n", c.error().message.c_str()), 1;
    uint64_t n = 0;
    const auto start = Clock::now();
    const auto stop = start + std::chrono::seconds(std::max(1, seconds / 2));
    while (Clock::now() < stop) {
      const std::string& l = lines[n % lines.size()];
      auto r = c->exec(
          "INSERT INTO audit_events (time_ns, event_type, sid, user_name, login, line) "
          "VALUES ($1, $2, $3, $4, $5, $6)",
          {pg::Param::int64(int64_t(n)), pg::Param::bytes("session.disk"), pg::Param::bytes("s"),
           pg::Param::bytes("alice"), pg::Param::bytes("root"),
           pg::Param::bytes(l.substr(0, l.size() - 1))});
      if (!r) return std::fprintf(stderr, "%s\n", r.error().message.c_str()), 1;
      ++n;
    }
    baseline = n / std::chrono::duration<double>(Clock::now() - start).count();
  }

  // 10 nodes, sync batches.
  std::atomic<uint64_t> events{0}, failures{0};
  const auto start = Clock::now();
  const auto stop = start + std::chrono::seconds(seconds);
  std::vector<std::thread> nodes;
  for (int t = 0; t < kNodes; ++t)
    nodes.emplace_back([&, t] {
      size_t i = size_t(t) * 397;
      std::vector<std::string_view> batch(kBatch);
      while (Clock::now() < stop) {
        for (auto& v : batch) v = lines[i++ % lines.size()];
        if ((*store)->append(batch, auditlog::Durability::sync))
          events += kBatch;
        else
          ++failures;
      }
    });
  for (auto& n : nodes) n.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const double rate = events / secs;
  std::printf("postgresql ingest, fsync on: %d nodes x sync batches of %zu: %.0f events/s "
              "(%llu events in %.1f s, %llu failed batches)\n",
              kNodes, kBatch, rate, (unsigned long long)events.load(), secs,
              (unsigned long long)failures.load());
  std::printf("baseline, one INSERT + commit per event: %.0f events/s\n", baseline);
  std::printf("ratio: %.1fx; target 50000 events/s: %s\n", rate / baseline,
              rate >= 50000 ? "met" : "MISSED");
  return failures ? 1 : 0;
}
