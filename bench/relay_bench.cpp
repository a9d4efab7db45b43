// Throughput of the relay: encoded session.disk lines emitted into the
// node's spool (SpoolingStore -> Outbox), delivered by the Forwarder to an
// Inbox writing a FileLog (the auth service's log), in one process with no
// network. The baseline, measured in the same run on the same disk: the
// same lines emitted straight into a FileLog. Both times include making
// every event durable (flush / flush_wait).
//
//   relay_bench [EVENTS] [DIR]   (default 200000 events, a temporary directory under /tmp)
#include <stdlib.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "audit/encode.hpp"
#include "auditlog/file_log.hpp"
#include "relay/forwarder.hpp"
#include "relay/inbox.hpp"
#include "relay/spooling_store.hpp"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;
constexpr size_t kDistinctLines = 4096;

std::vector<std::string> make_lines() {
  static const char* kPaths[] = {"/etc/ld.so.cache", "/lib/x86_64-linux-gnu/libc.so.6",
                                 "/etc/passwd", "/home/alice/project/src/main.cpp"};
  audit::SessionMeta meta;
  meta.cluster_name = "purple";
  meta.server_hostname = "node-1";
  meta.server_id = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
  meta.sid = "86aca627-971d-4883-854d-d309ba04c658";
  meta.login = "ec2-user";
  meta.user = "alice";
  std::vector<std::string> lines;
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  for (size_t i = 0; i < kDistinctLines; ++i) {
    Event ev;
    ev.time_ns = int64_t{now.tv_sec} * 1'000'000'000 + static_cast<int64_t>(i) * 1000;
    ev.process.pid = 5007;
    ev.process.ppid = 4985;
    ev.process.program = "make";
    ev.body = DiskEvent{kPaths[i % std::size(kPaths)], 0x80000, 0, 3};
    std::string line;
    audit::encode_event(ev, meta, i, "9b825e22-744d-4130-94c5-dea49198ae3d", line);
    lines.push_back(std::move(line));
  }
  return lines;
}

int fail(const std::string& what) {
  std::fprintf(stderr, "relay_bench: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200000;
  std::string dir;
  const bool temporary = argc < 3;
  if (temporary) {
    char tmpl[] = "/tmp/vigil-relay-bench-XXXXXX";
    if (!mkdtemp(tmpl)) return fail("mkdtemp failed");
    dir = tmpl;
  } else {
    dir = argv[2];
  }
  const auto lines = make_lines();
  size_t line_bytes = 0;
  for (const auto& l : lines) line_bytes += l.size();

  // Baseline: straight into a FileLog.
  double base_s = 0;
  {
    auditlog::FileLogOptions o;
    o.data_dir = dir + "/direct";
    o.server_uuid = "auth";
    auto log = auditlog::FileLog::open(o);
    if (!log) return fail(log.error().message);
    const auto start = Clock::now();
    for (uint64_t i = 0; i < n; ++i)
      if (auto r = (*log)->emit(lines[i % kDistinctLines]); !r) return fail(r.error().message);
    if (auto r = (*log)->flush(); !r) return fail(r.error().message);
    base_s = std::chrono::duration<double>(Clock::now() - start).count();
  }

  // Through the relay.
  double relay_s = 0, emit_s = 0;
  relay::ForwarderStats fstats;
  uint64_t stored = 0;
  {
    auditlog::FileLogOptions o;
    o.data_dir = dir + "/auth";
    o.server_uuid = "auth";
    auto log = auditlog::FileLog::open(o);
    if (!log) return fail(log.error().message);
    auto inbox = relay::Inbox::open(**log, relay::InboxOptions{dir + "/auth/relay/events", {}});
    if (!inbox) return fail(inbox.error().message);
    relay::OutboxOptions ob;
    ob.data_dir = dir + "/node";
    ob.server_id = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
    ob.server_hostname = "node-1";
    auto box = relay::Outbox::open(ob);
    if (!box) return fail(box.error().message);
    relay::SpoolingStore sink(**box);
    const relay::Caller caller{ob.server_id, ob.server_hostname};
    relay::Forwarder fwd(**box, [&](const relay::Batch& b) {
      return (*inbox)->accept(caller, b);
    });
    const auto start = Clock::now();
    for (uint64_t i = 0; i < n; ++i)
      if (auto r = sink.emit(lines[i % kDistinctLines]); !r) return fail(r.error().message);
    emit_s = std::chrono::duration<double>(Clock::now() - start).count();
    if (auto r = fwd.flush_wait(Clock::now() + std::chrono::minutes(10)); !r)
      return fail(r.error().message);
    if (auto r = (*log)->flush(); !r) return fail(r.error().message);
    relay_s = std::chrono::duration<double>(Clock::now() - start).count();
    fstats = fwd.stats();
    stored = (*log)->stats().events_written;
  }
  if (temporary) std::filesystem::remove_all(dir);

  std::printf("relay_bench: %llu session.disk lines of %zu bytes on average\n",
              static_cast<unsigned long long>(n), line_bytes / lines.size());
  std::printf("  baseline, straight into a FileLog:   %.0f events/s (%.2f s)\n", n / base_s, base_s);
  std::printf("  Outbox -> Forwarder -> Inbox -> FileLog: %.0f events/s (%.2f s; emits took %.2f s)\n",
              n / relay_s, relay_s, emit_s);
  std::printf("  ratio relay/baseline: %.2f; batches %llu, retries %llu, stored %llu\n",
              relay_s / base_s, static_cast<unsigned long long>(fstats.batches),
              static_cast<unsigned long long>(fstats.retries),
              static_cast<unsigned long long>(stored));
  return stored == n && fstats.delivered == n ? 0 : 1;
}
