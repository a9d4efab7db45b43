// Throughput of the relay, three measures of one run on the same disk:
//  1. baseline: the lines emitted straight into a FileLog (flushed);
//  2. one node in one process, no network: SpoolingStore -> Outbox ->
//     Forwarder -> Inbox -> FileLog;
//  3. the auth service ingesting from NODES nodes at once over its real
//     transport: a child process runs an api::Server (mutual TLS, the
//     route POST /v1/events as cluster_services.cpp serves it) with an
//     Inbox and a FileLog; the parent runs NODES Outboxes (filled first) and
//     NODES Forwarders, each with its own node identity and HTTPS client.
//     Reported: events/s from the first batch sent to the last acknowledged,
//     the auth process's CPU time and peak RSS, the nodes' CPU time.
// Every event counted was acknowledged, so durable (Durability::sync).
//
//   relay_bench [EVENTS] [DIR] [NODES] [FORMAT] [BATCH]
//     defaults: 200000 events, a temporary directory under /tmp ("" too), 10
//     nodes, FORMAT lines (the batch as the node sends it, wire.hpp
//     to_lines) or json (events as JSON strings), BATCH the Forwarder's
//     max_batch_events (its default when absent)
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "api/client.hpp"
#include "api/server.hpp"
#include "auditlog/file_log.hpp"
#include "bench_events.hpp"
#include "ca/authority.hpp"
#include "relay/forwarder.hpp"
#include "relay/inbox.hpp"
#include "relay/spooling_store.hpp"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;
using bench::kDistinctLines;

int fail(const std::string& what) {
  std::fprintf(stderr, "relay_bench: %s\n", what.c_str());
  return 1;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string node_uuid(size_t i) {
  char id[40];
  std::snprintf(id, sizeof id, "531dc1de-c2c9-49bd-a0e3-%012zx", i + 1);
  return id;
}

// Lines in the day files of a FileLog's data_dir.
uint64_t stored_lines(const std::string& data_dir) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(data_dir + "/log")) {
    if (e.is_symlink() || !e.is_regular_file() || e.path().extension() != ".log") continue;
    std::ifstream f(e.path(), std::ios::binary);
    char buf[1 << 16];
    while (f.read(buf, sizeof buf) || f.gcount() > 0)
      for (std::streamsize i = 0; i < f.gcount(); ++i) n += buf[i] == '\n';
  }
  return n;
}

// The auth service's side of measure 3, in a child process: never returns.
[[noreturn]] void serve(const std::string& dir, api::ServerOptions o, int port_fd) {
  auditlog::FileLogOptions lo;
  lo.data_dir = dir;
  lo.server_uuid = "auth";
  auto log = auditlog::FileLog::open(lo);
  if (!log) _exit(2);
  auto inbox = relay::Inbox::open(**log, relay::InboxOptions{dir + "/relay/events", {}});
  if (!inbox) _exit(2);
  api::Router router;
  // As cluster_services.cpp: the caller from its certificate, the batch
  // from the body, the answer the Ack.
  router.add(
      "POST", "/v1/events",
      [&](const api::Request& q) -> Result<api::Reply> {
        if (!q.peer.identity || q.peer.identity->kind != ca::TlsIdentityKind::node)
          return Error::of(Errc::permission_denied, "only a node sends events");
        const relay::Caller caller{q.peer.identity->name, q.peer.identity->node_name};
        auto batch = q.content_type == relay::kBatchLinesType ? relay::batch_from_lines(q.body)
                     : q.json.is_null()                        ? relay::batch_from_json(q.body)
                                                               : relay::batch_from_value(q.json);
        if (!batch) return batch.error();
        auto acked = (*inbox)->accept(caller, *batch);
        if (!acked) return acked.error();
        return api::Reply::bytes(relay::to_json(relay::Ack{*acked}), "application/json");
      },
      api::RouteOptions{relay::kMaxBatchJsonBytes});
  auto server = api::Server::listen(std::move(o), router);
  uint16_t port = server ? (*server)->port() : 0;
  if (write(port_fd, &port, sizeof port) != sizeof port || !server) _exit(1);
  close(port_fd);
  (*server)->run();
  _exit(0);
}

struct FleetResult {
  double seconds = 0, fill_seconds = 0;
  double auth_cpu_s = 0, nodes_cpu_s = 0;
  long auth_peak_kib = 0;
  uint64_t delivered = 0, stored = 0, batches = 0, retries = 0;
};

Result<FleetResult> fleet(const std::string& dir, uint64_t n, size_t nodes, bool lines,
                          const relay::ForwarderOptions& fo) {
  const int64_t now = time(nullptr);
  auto authority = ca::CertAuthority::create(ca::CaType::tls, "bench", now);
  if (!authority) return authority.error();
  auto server_key = ca::PrivateKey::generate(ca::KeyAlgorithm::ecdsa_p256);
  if (!server_key) return server_key.error();
  auto issue = [&](const ca::PrivateKey& key, const std::string& uuid, const std::string& name) {
    ca::TlsIssueRequest r;
    r.identity.kind = ca::TlsIdentityKind::node;
    r.identity.cluster = "bench";
    r.identity.name = uuid;
    r.identity.node_name = name;
    r.identity.addresses = {"127.0.0.1"};
    r.subject_public_key = key.spki_der();
    r.now = now;
    r.ttl = 3600;
    return authority->issue_tls(r);
  };
  auto server_cert = issue(*server_key, "auth", "auth");
  if (!server_cert) return server_cert.error();

  // The auth service: forked before any thread exists.
  int port_pipe[2];
  if (pipe(port_pipe) != 0) return Error::sys("pipe");
  api::ServerOptions so;
  so.certificate = *server_cert;
  so.ca_certificate = authority->trusted_tls_certificates().front();
  so.key = &*server_key;
  so.trusted = authority->trusted_tls_certificates();
  so.cluster = "bench";
  so.client_certificates = api::ClientCertificates::required;
  const pid_t child = fork();
  if (child < 0) return Error::sys("fork");
  if (child == 0) {
    close(port_pipe[0]);
    serve(dir + "/auth", std::move(so), port_pipe[1]);
  }
  close(port_pipe[1]);
  uint16_t port = 0;
  const bool started = read(port_pipe[0], &port, sizeof port) == sizeof port && port != 0;
  close(port_pipe[0]);
  struct Reap {
    pid_t pid;
    ~Reap() {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } reap{child};
  if (!started) return Error::of(Errc::internal, "the auth service did not start");

  struct Node {
    ca::PrivateKey key = ca::PrivateKey::generate(ca::KeyAlgorithm::ecdsa_p256).value();
    std::unique_ptr<relay::Outbox> outbox;
    std::unique_ptr<api::Client> client;
    std::unique_ptr<relay::Forwarder> forwarder;
  };
  std::vector<Node> fleet(nodes);
  FleetResult out;
  const auto fill = Clock::now();
  for (size_t i = 0; i < nodes; ++i) {
    Node& node = fleet[i];
    relay::OutboxOptions ob;
    ob.data_dir = dir + "/node-" + std::to_string(i);
    ob.server_id = node_uuid(i);
    ob.server_hostname = "node-" + std::to_string(i);
    auto box = relay::Outbox::open(ob);
    if (!box) return box.error();
    node.outbox = std::move(*box);
    relay::SpoolingStore sink(*node.outbox);
    const auto node_lines = bench::disk_event_lines(ob.server_id, ob.server_hostname);
    const uint64_t mine = n / nodes + (i < n % nodes ? 1 : 0);
    for (uint64_t k = 0; k < mine; ++k)
      if (auto r = sink.emit(node_lines[k % kDistinctLines]); !r) return r.error();
    if (auto r = sink.flush(); !r) return r.error();
    auto cert = issue(node.key, ob.server_id, ob.server_hostname);
    if (!cert) return cert.error();
    api::ClientOptions co;
    co.address = "127.0.0.1:" + std::to_string(port);
    co.trusted = authority->trusted_tls_certificates();
    co.cluster = "bench";
    co.server_name = "auth";
    co.key = &node.key;
    co.certificate = *cert;
    auto client = api::Client::connect(co);
    if (!client) return client.error();
    node.client = std::move(*client);
  }
  out.fill_seconds = seconds_since(fill);

  const double auth_cpu0 = bench::cpu_seconds(child), self_cpu0 = bench::cpu_seconds();
  const auto start = Clock::now();
  for (Node& node : fleet) {
    api::Client* client = node.client.get();
    node.forwarder = std::make_unique<relay::Forwarder>(
        *node.outbox, [client, lines](const relay::Batch& b) -> Result<uint64_t> {
          auto r = lines ? client->call("POST", "/v1/events", {}, relay::to_lines(b), relay::kBatchLinesType)
                         : client->call("POST", "/v1/events", {}, relay::to_json(b), "application/json");
          if (!r) return r.error();
          if (r->status != 200) return api::error_from_response(r->status, r->body);
          auto ack = relay::ack_from_json(r->body);
          if (!ack) return ack.error();
          return ack->acked_seq;
        },
        fo);
  }
  for (Node& node : fleet)
    if (auto r = node.forwarder->flush_wait(Clock::now() + std::chrono::minutes(10)); !r) return r.error();
  out.seconds = seconds_since(start);
  out.auth_cpu_s = bench::cpu_seconds(child) - auth_cpu0;
  out.nodes_cpu_s = bench::cpu_seconds() - self_cpu0;
  out.auth_peak_kib = bench::status_kib(child, "VmHWM");
  for (Node& node : fleet) {
    const auto s = node.forwarder->stats();
    out.delivered += s.delivered;
    out.batches += s.batches;
    out.retries += s.retries;
    node.forwarder.reset();
  }
  out.stored = stored_lines(dir + "/auth");
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200000;
  std::string dir;
  const bool temporary = argc < 3 || std::string(argv[2]).empty();
  if (temporary) {
    char tmpl[] = "/tmp/vigil-relay-bench-XXXXXX";
    if (!mkdtemp(tmpl)) return fail("mkdtemp failed");
    dir = tmpl;
  } else {
    dir = argv[2];
  }
  const size_t nodes = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 10;
  const bool lines_format = argc <= 4 || std::string(argv[4]) != "json";
  relay::ForwarderOptions fo;
  if (argc > 5) {
    fo.max_batch_events = std::strtoul(argv[5], nullptr, 10);
    fo.max_batch_bytes = std::max<size_t>(fo.max_batch_bytes, fo.max_batch_events * 1024);
  }
  if (n == 0 || nodes == 0) return fail("EVENTS and NODES must be at least 1");

  // 3 first: it forks, and must do so before this process has threads.
  auto many = fleet(dir + "/fleet", n, nodes, lines_format, fo);
  if (!many) return fail("fleet: " + many.error().message);

  const std::string server_id = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
  const auto lines = bench::disk_event_lines(server_id, "node-1");

  // 1. Baseline: straight into a FileLog.
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
    base_s = seconds_since(start);
  }

  // 2. One node through the relay, one process.
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
    ob.server_id = server_id;
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
    emit_s = seconds_since(start);
    if (auto r = fwd.flush_wait(Clock::now() + std::chrono::minutes(10)); !r)
      return fail(r.error().message);
    if (auto r = (*log)->flush(); !r) return fail(r.error().message);
    relay_s = seconds_since(start);
    fstats = fwd.stats();
    stored = (*log)->stats().events_written;
  }
  if (temporary) std::filesystem::remove_all(dir);

  std::printf("relay_bench: %llu session.disk lines of %zu bytes on average\n",
              static_cast<unsigned long long>(n), bench::average_bytes(lines));
  std::printf("  1. baseline, straight into a FileLog:       %8.0f events/s (%.2f s)\n", n / base_s,
              base_s);
  std::printf("  2. one node, Outbox -> Forwarder -> Inbox -> FileLog, one process:\n"
              "                                              %8.0f events/s (%.2f s; emits took %.2f s)"
              " = %.2fx the baseline's time; batches %llu, retries %llu, stored %llu\n",
              n / relay_s, relay_s, emit_s, relay_s / base_s,
              static_cast<unsigned long long>(fstats.batches),
              static_cast<unsigned long long>(fstats.retries),
              static_cast<unsigned long long>(stored));
  const FleetResult& f = *many;
  std::printf("  3. %zu nodes at once over HTTPS (mutual TLS, batches as %s, at most %zu events)"
              " into one auth service (Inbox + FileLog):\n"
              "                                              %8.0f events/s (%.2f s, spools filled"
              " before in %.2f s) = %.2fx the baseline's time\n"
              "     auth service: CPU %.2f s (%.1f us/event), peak RSS %.1f MiB;"
              " nodes (one process): CPU %.2f s\n"
              "     batches %llu, retries %llu, acknowledged %llu, lines in the auth service's log %llu\n",
              nodes, lines_format ? "lines" : "JSON", fo.max_batch_events, n / f.seconds, f.seconds, f.fill_seconds, f.seconds / base_s, f.auth_cpu_s,
              f.auth_cpu_s * 1e6 / n, f.auth_peak_kib / 1024.0, f.nodes_cpu_s,
              static_cast<unsigned long long>(f.batches), static_cast<unsigned long long>(f.retries),
              static_cast<unsigned long long>(f.delivered), static_cast<unsigned long long>(f.stored));
  std::ifstream loadavg("/proc/loadavg");
  std::string load1;
  loadavg >> load1;
  std::printf("  the host's load average (1 min) at the end: %s\n", load1.c_str());
  return stored == n && fstats.delivered == n && f.delivered == n && f.stored == n ? 0 : 1;
}
