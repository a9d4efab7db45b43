#include "engine/decode.hpp"
#include "common/clock.hpp"

#include <arpa/inet.h>
#include <linux/types.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

extern "C" {
#include "vigil_events.h"
}

namespace vigil::decode {

// The layout is shared with the BPF side; a change there must show here.
static_assert(sizeof(vigil_record_head) == 64);
static_assert(offsetof(vigil_exec_record, data) == 88);
static_assert(sizeof(vigil_exec_record) == 88 + VIGIL_ARGV_MAX + 2 * VIGIL_PATH_MAX);
static_assert(offsetof(vigil_open_record, data) == 96);
static_assert(sizeof(vigil_open_record) == 96 + 2 * VIGIL_PATH_MAX);
static_assert(offsetof(vigil_net_record, path) == 136);
static_assert(sizeof(vigil_net_record) == 136 + VIGIL_UNIX_PATH_MAX);
static_assert(sizeof(vigil_session_state) == 16);
static_assert(sizeof(vigil_session_counters) == 64);
static_assert(sizeof(vigil_session_mark) == 8);
static_assert(VIGIL_SCHEMA_VERSION == 4, "update the decoder for the new schema");

namespace {


template <typename T>
Result<T> read_as(std::span<const std::byte> record, size_t min_size, const char* what) {
  if (record.size() < min_size)
    return Error{std::string("kernel sent a ") + what + " record of " +
                 std::to_string(record.size()) + " bytes, expected at least " +
                 std::to_string(min_size) + ": the BPF object and vigil are from different builds"};
  T out{};
  std::memcpy(&out, record.data(), std::min(record.size(), sizeof(T)));
  return out;
}

std::string bounded_string(const char* data, size_t max) {
  return std::string(data, strnlen(data, max));
}

ProcessInfo process_of(const vigil_record_head& h) {
  ProcessInfo p;
  p.pid = h.pid;
  p.tid = h.tid;
  p.ppid = h.ppid;
  p.uid = h.uid;
  p.gid = h.gid;
  p.audit_session = h.audit_session;
  p.cgroup_id = h.cgroup_id;
  p.program = bounded_string(h.comm, sizeof(h.comm));
  return p;
}

Event event_of(const vigil_record_head& h, const TimeBase& time) {
  Event ev;
  ev.session = h.session;
  ev.time_ns = time.to_realtime(h.ktime_ns);
  ev.process = process_of(h);
  return ev;
}

std::string ntop(int family, const void* addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, addr, buf, sizeof(buf));
  return buf;
}

bool is_v4_mapped(const uint8_t a[16]) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a, kPrefix, sizeof(kPrefix)) == 0;
}

}  // namespace

TimeBase TimeBase::now() {
  return TimeBase{clock::ns(CLOCK_REALTIME) - clock::ns(CLOCK_BOOTTIME)};
}

Result<RecordHead> head(std::span<const std::byte> record) {
  auto h = read_as<vigil_record_head>(record, sizeof(vigil_record_head), "ring");
  if (!h) return h.error();
  if (h->kind >= VIGIL_KIND_COUNT)
    return Error{"kernel sent a record of unknown kind " + std::to_string(h->kind) +
                 ": the BPF object and vigil are from different builds"};
  return RecordHead{static_cast<Kind>(h->kind), h->session};
}

ExecArgv split_exec_argv(std::string_view blob, std::string_view path, bool script) {
  std::vector<std::string> all;
  size_t pos = 0;
  while (pos < blob.size()) {
    size_t nul = blob.find('\0', pos);
    if (nul == std::string_view::npos) break;  // cut mid-argument: drop it
    all.emplace_back(blob.substr(pos, nul - pos));
    pos = nul + 1;
  }
  ExecArgv out;
  size_t first = 1;  // argv[0] is never among the arguments
  if (script) {
    // The kernel's prefix: interpreter, its optional argument, the script path.
    for (size_t i = 1; i < all.size(); ++i) {
      if (all[i] == path) {
        first = i + 1;
        out.interpreter.assign(all.begin(), all.begin() + i);
        break;
      }
    }
  } else if (!all.empty()) {
    out.argv0 = all[0];
  }
  if (first < all.size())
    out.argv.assign(std::make_move_iterator(all.begin() + first),
                    std::make_move_iterator(all.end()));
  return out;
}

std::vector<std::string> split_argv(std::string_view blob, std::string_view path, bool script) {
  return split_exec_argv(blob, path, script).argv;
}

Result<Event> exec(std::span<const std::byte> record, const TimeBase& time) {
  // Only the fixed part is copied out; argv and the paths are read in place.
  constexpr size_t fixed = offsetof(vigil_exec_record, data);
  if (record.size() < fixed)
    return Error{"kernel sent a command record of " + std::to_string(record.size()) +
                 " bytes, expected at least " + std::to_string(fixed) +
                 ": the BPF object and vigil are from different builds"};
  vigil_exec_record rec;
  std::memcpy(&rec, record.data(), fixed);
  Event ev = event_of(rec.head, time);
  CommandEvent cmd;
  cmd.return_code = rec.return_code;
  uint32_t flags = rec.flags;
  // argv, then the path and its NUL, then the kernel path and its NUL: each
  // bounded by the bytes received and its own limit.
  std::string_view data(reinterpret_cast<const char*>(record.data()) + fixed,
                        std::min(record.size() - fixed, sizeof(rec.data)));
  size_t argv_len = std::min<size_t>({rec.argv_len, data.size(), VIGIL_ARGV_MAX});
  std::string_view argv = data.substr(0, argv_len);
  std::string_view rest = data.substr(argv_len);
  size_t path_len = std::min<size_t>({rec.path_len, rest.size(), VIGIL_PATH_MAX - 1});
  cmd.path.assign(rest.data(), strnlen(rest.data(), path_len));
  if (rec.kernel_path_len > 0 && path_len < rest.size()) {
    std::string_view kpath = rest.substr(path_len + 1);
    size_t klen = std::min<size_t>({rec.kernel_path_len, kpath.size(), VIGIL_PATH_MAX - 1});
    cmd.kernel_path.assign(kpath.data(), strnlen(kpath.data(), klen));
  }
  ExecArgv split = split_exec_argv(argv, cmd.path, flags & VIGIL_EXEC_SCRIPT);
  cmd.argv = std::move(split.argv);
  cmd.interpreter = std::move(split.interpreter);
  // argv[0] is said only when it is not the program's own name (exec -a).
  // A failed exec's argv was read from the caller: its argv[0] too.
  std::string_view base = std::string_view(cmd.path).substr(cmd.path.rfind('/') + 1);
  if (split.argv0 != cmd.path && split.argv0 != base) cmd.argv0 = std::move(split.argv0);
  cmd.argv_truncated = flags & VIGIL_EXEC_ARGV_TRUNCATED;
  cmd.path_truncated = flags & VIGIL_EXEC_PATH_TRUNCATED;
  cmd.kernel_path_truncated = flags & VIGIL_EXEC_KPATH_TRUNCATED;
  // argv that could not be read from memory: the event is not whole.
  cmd.args_lost = flags & VIGIL_EXEC_ARGV_UNREADABLE;
  ev.body = std::move(cmd);
  return ev;
}

Result<void> open_into(std::span<const std::byte> record, const TimeBase& time, Event& ev) {
  // Only the fixed part is copied out (the record's 8 KiB of path room is
  // not zeroed and copied per event: a storm brings a million a second).
  constexpr size_t fixed = offsetof(vigil_open_record, data);
  if (record.size() < fixed)
    return Error{"kernel sent a disk record of " + std::to_string(record.size()) +
                 " bytes, expected at least " + std::to_string(fixed) +
                 ": the BPF object and vigil are from different builds"};
  vigil_open_record rec;
  std::memcpy(&rec, record.data(), fixed);
  ev.session = rec.head.session;
  ev.time_ns = time.to_realtime(rec.head.ktime_ns);
  ProcessInfo& p = ev.process;
  p.pid = rec.head.pid;
  p.tid = rec.head.tid;
  p.ppid = rec.head.ppid;
  p.uid = rec.head.uid;
  p.gid = rec.head.gid;
  p.audit_session = rec.head.audit_session;
  p.cgroup_id = rec.head.cgroup_id;
  p.program.assign(rec.head.comm, strnlen(rec.head.comm, sizeof(rec.head.comm)));
  // The strings below reuse the capacity of an Event decoded before.
  if (!std::holds_alternative<DiskEvent>(ev.body)) ev.body.emplace<DiskEvent>();
  DiskEvent& disk = std::get<DiskEvent>(ev.body);
  // Both strings are bounded by the bytes received and by their arrays,
  // whatever lengths the kernel claimed.
  std::string_view data(reinterpret_cast<const char*>(record.data()) + fixed,
                        std::min(record.size() - fixed, sizeof(rec.data)));
  size_t len = std::min<size_t>({rec.path_len, data.size(), VIGIL_PATH_MAX - 1});
  disk.path.assign(data.data(), strnlen(data.data(), len));
  disk.kernel_path.clear();
  if (rec.kernel_path_len > 0 && len < data.size()) {
    std::string_view rest = data.substr(len + 1);
    size_t klen = std::min<size_t>({rec.kernel_path_len, rest.size(), VIGIL_PATH_MAX - 1});
    disk.kernel_path.assign(rest.data(), strnlen(rest.data(), klen));
  }
  disk.flags = rec.open_flags;
  disk.mode = rec.mode;
  disk.return_code = rec.return_code;
  disk.path_truncated = rec.flags & VIGIL_OPEN_PATH_TRUNCATED;
  disk.path_unreadable = rec.flags & VIGIL_OPEN_PATH_UNREADABLE;
  disk.kernel_path_truncated = rec.flags & VIGIL_OPEN_KPATH_TRUNCATED;
  disk.kernel_path_missing = rec.flags & VIGIL_OPEN_KPATH_MISSING;
  return {};
}

Result<Event> open(std::span<const std::byte> record, const TimeBase& time) {
  Event ev;
  if (auto r = open_into(record, time, ev); !r) return r.error();
  return ev;
}

Result<Event> network(std::span<const std::byte> record, const TimeBase& time) {
  constexpr size_t fixed = offsetof(vigil_net_record, path);
  auto rec = read_as<vigil_net_record>(record, fixed, "network");
  if (!rec) return rec.error();
  Event ev = event_of(rec->head, time);
  NetworkEvent net;
  if (rec->operation > VIGIL_NET_CONNECT_RESULT)
    return Error{"kernel sent a network record of operation " + std::to_string(rec->operation) +
                 ": the BPF object and vigil are from different builds"};
  net.operation = rec->operation;
  net.net_ns = rec->net_ns;
  net.forgotten_destinations = rec->forgotten;
  if (rec->family == AF_UNIX) {
    net.protocol = NetProtocol::unix_socket;
    net.version = 0;
    // Bounded by the bytes received, the array and sun_path, whatever path_len says.
    size_t len = std::min<size_t>({rec->path_len, record.size() - fixed, sizeof(sockaddr_un::sun_path)});
    std::string_view path(rec->path, len);
    if (rec->flags & VIGIL_NET_UNIX_ABSTRACT) {
      // An abstract name is every byte after its leading NUL (NULs included).
      net.unix_abstract = true;
      net.unix_path.assign(path.substr(std::min<size_t>(1, path.size())));
    } else {
      net.unix_path.assign(path.data(), strnlen(path.data(), path.size()));
    }
    ev.body = std::move(net);
    return ev;
  }
  if (rec->protocol == IPPROTO_TCP)
    net.protocol = NetProtocol::tcp;
  else if (rec->protocol == IPPROTO_UDP)
    net.protocol = NetProtocol::udp;
  else
    return Error{"kernel sent a network record of protocol " + std::to_string(rec->protocol) +
                 ", expected TCP or UDP"};
  net.dst_port = rec->dport;
  net.src_port = rec->sport;
  if (rec->family == AF_INET) {
    net.version = 4;
    net.src_addr = ntop(AF_INET, rec->saddr4);
    net.dst_addr = ntop(AF_INET, rec->daddr4);
  } else if (rec->family == AF_INET6 && is_v4_mapped(rec->daddr6)) {
    // An IPv6 socket talking to ::ffff:a.b.c.d sends IPv4 on the wire:
    // report what the network sees.
    net.version = 4;
    net.src_addr = ntop(AF_INET, rec->saddr4);
    net.dst_addr = ntop(AF_INET, rec->daddr6 + 12);
  } else if (rec->family == AF_INET6) {
    net.version = 6;
    net.src_addr = ntop(AF_INET6, rec->saddr6);
    net.dst_addr = ntop(AF_INET6, rec->daddr6);
  } else {
    return Error{"kernel sent a network record of address family " +
                 std::to_string(rec->family) + ", expected AF_INET, AF_INET6 or AF_UNIX"};
  }
  if (net.operation == net_op::connect_result) {
    net.return_code = rec->result;
    if (rec->flags & VIGIL_NET_CLOSED)
      net.result = ConnectResult::closed;
    else if (rec->result == 0)
      net.result = ConnectResult::established;
    else if (rec->result == -ECONNREFUSED)
      net.result = ConnectResult::refused;
    else
      net.result = ConnectResult::failed;
  }
  ev.body = std::move(net);
  return ev;
}

SessionCounters sum_counters(std::span<const std::byte> per_cpu, size_t cpus) {
  // The kernel hands a per-CPU value as one copy per possible CPU, each
  // rounded up to 8 bytes.
  constexpr size_t stride = (sizeof(vigil_session_counters) + 7) / 8 * 8;
  SessionCounters total;
  size_t n = std::min(cpus, per_cpu.size() / stride);
  for (size_t cpu = 0; cpu < n; ++cpu) {
    vigil_session_counters c;
    std::memcpy(&c, per_cpu.data() + cpu * stride, sizeof(c));
    for (int k = 0; k < kKindCount; ++k) {
      total.emitted.v[k] += c.emitted[k];
      total.lost.v[k] += c.lost[k];
    }
    total.marked_forks += c.marked_forks;
    total.unmarked_forks += c.unmarked_forks;
  }
  return total;
}

size_t per_cpu_counters_size(size_t cpus) {
  return cpus * ((sizeof(vigil_session_counters) + 7) / 8 * 8);
}

}  // namespace vigil::decode
