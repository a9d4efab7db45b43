// A process that appends audit events until it is killed, for the SIGKILL
// test (kill_test.cpp): two threads emit realistic session.disk lines,
// most buffered, every 16th sync; the ei of each sync event is printed to
// stdout once emit() acknowledged it.
//
//   auditlog_writer DATA_DIR SERVER_UUID FIRST_EI
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "audit/encode.hpp"
#include "auditlog/file_log.hpp"

namespace {

using namespace vigil;

std::string disk_line(uint64_t ei, const std::string& server_id) {
  Event ev;
  ev.time_ns = static_cast<int64_t>(time(nullptr)) * 1'000'000'000;
  ev.process.pid = static_cast<uint32_t>(getpid());
  ev.process.program = "writer";
  // Paths of varied length, so that groups end anywhere in a page.
  ev.body = DiskEvent{"/var/lib/app/data/" + std::string(ei % 97, 'x'), 0x80000};
  audit::SessionMeta meta;
  meta.server_id = server_id;
  meta.sid = "86aca627-971d-4883-854d-d309ba04c658";
  meta.user = meta.login = "writer";
  std::string out;
  audit::encode_event(ev, meta, ei, "uid", out);
  return out;
}

void emit_forever(auditlog::FileLog& log, const std::string& server_id, uint64_t first_ei) {
  std::string line;
  for (uint64_t ei = first_ei;; ++ei) {
    line.clear();
    line = disk_line(ei, server_id);
    const bool sync = ei % 16 == 0;
    auto r = log.emit(line, sync ? auditlog::Durability::sync : auditlog::Durability::buffered);
    if (sync && r) {
      // One write() per number: nothing waits in a stdio buffer at the kill.
      const std::string ack = std::to_string(ei) + "\n";
      if (write(STDOUT_FILENO, ack.data(), ack.size()) < 0) std::exit(1);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: auditlog_writer DATA_DIR SERVER_UUID FIRST_EI\n");
    return 2;
  }
  auditlog::FileLogOptions options;
  options.data_dir = argv[1];
  options.server_uuid = argv[2];
  auto log = auditlog::FileLog::open(options);
  if (!log) {
    std::fprintf(stderr, "auditlog_writer: %s\n", log.error().message.c_str());
    return 1;
  }
  const uint64_t first = std::strtoull(argv[3], nullptr, 10);
  // Two producers, as two sessions: ei ranges apart.
  std::thread other([&] { emit_forever(**log, options.server_uuid, first + 500'000'000); });
  emit_forever(**log, options.server_uuid, first);
}
