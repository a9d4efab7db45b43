// The cluster API's HTTPS transport under load: a small JSON call
// (POST /v1/heartbeat, a ~100-byte body, a ~60-byte answer) over N
// keep-alive mutual-TLS connections, N = 1, 100, 1000 by default.
//
// The server runs in a child process (fork before any thread), so that its
// CPU time and memory are its own: utime+stime and VmRSS/VmHWM are read
// from /proc/<child>. The clients are api::Client, driven round robin by
// two threads (the machine has two cores; the server shares them).
// Reported: requests/s, p50 and p99 latency of one call, the server's CPU
// per request and its RSS; the ratios are against N = 1 of the same run.
//
//   api_bench [--seconds S] [--connections 1,100,1000] [--markdown FILE]
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api/client.hpp"
#include "api/server.hpp"
#include "ca/authority.hpp"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;

struct Run {
  size_t connections = 0;
  double seconds = 0;
  size_t calls = 0;
  double p50_ms = 0, p99_ms = 0;
  double server_cpu_s = 0;
  long rss_kib = 0, hwm_kib = 0;
  size_t failures = 0;
};

double cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(f)), {});
  size_t close = text.rfind(')');
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i == 14 || i == 15) ticks += std::stod(field);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long status_kib(pid_t pid, const std::string& key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  std::vector<size_t> sizes = {1, 100, 1000};
  std::string markdown;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--seconds") seconds = std::stod(v);
    else if (a == "--markdown") markdown = v;
    else if (a == "--connections") {
      sizes.clear();
      std::istringstream in(v);
      for (std::string n; std::getline(in, n, ',');) sizes.push_back(std::stoul(n));
    } else {
      std::fprintf(stderr, "api_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  setrlimit(RLIMIT_NOFILE, &nofile);

  int64_t now = time(nullptr);
  auto authority = ca::CertAuthority::create(ca::CaType::tls, "bench", now);
  auto server_key = ca::PrivateKey::generate(ca::KeyAlgorithm::ecdsa_p256);
  auto node_key = ca::PrivateKey::generate(ca::KeyAlgorithm::ecdsa_p256);
  if (!authority || !server_key || !node_key) {
    std::fprintf(stderr, "api_bench: cannot make keys\n");
    return 1;
  }
  auto issue = [&](const ca::PrivateKey& key, const char* name) {
    ca::TlsIssueRequest r;
    r.identity.kind = ca::TlsIdentityKind::node;
    r.identity.cluster = "bench";
    r.identity.name = name;
    r.identity.node_name = name;
    r.identity.addresses = {"127.0.0.1"};
    r.subject_public_key = key.spki_der();
    r.now = now;
    r.ttl = 3600;
    return authority->issue_tls(r);
  };
  auto server_cert = issue(*server_key, "auth");
  auto node_cert = issue(*node_key, "node-1");
  if (!server_cert || !node_cert) {
    std::fprintf(stderr, "api_bench: cannot issue certificates\n");
    return 1;
  }

  std::vector<Run> runs;
  for (size_t n : sizes) {
    int port_pipe[2];
    if (pipe(port_pipe) != 0) return 1;
    pid_t child = fork();
    if (child == 0) {
      close(port_pipe[0]);
      api::Router router;
      router.add("POST", "/v1/heartbeat", [](const api::Request& q) -> Result<api::Reply> {
        return api::Reply::json({{"ok", true}, {"node", q.peer.identity ? q.peer.identity->name : ""},
                                 {"seq", q.json.value("seq", 0)}});
      });
      api::ServerOptions o;
      o.certificate = *server_cert;
      o.ca_certificate = authority->trusted_tls_certificates().front();
      o.key = &*server_key;
      o.trusted = authority->trusted_tls_certificates();
      o.cluster = "bench";
      o.client_certificates = api::ClientCertificates::required;
      auto server = api::Server::listen(std::move(o), router);
      uint16_t port = server ? (*server)->port() : 0;
      if (write(port_pipe[1], &port, sizeof port) != sizeof port || !server) _exit(1);
      (*server)->run();
      _exit(0);
    }
    close(port_pipe[1]);
    uint16_t port = 0;
    if (read(port_pipe[0], &port, sizeof port) != sizeof port || port == 0) {
      std::fprintf(stderr, "api_bench: the server did not start\n");
      return 1;
    }
    close(port_pipe[0]);

    std::vector<std::unique_ptr<api::Client>> clients;
    for (size_t i = 0; i < n; ++i) {
      api::ClientOptions co;
      co.address = "127.0.0.1:" + std::to_string(port);
      co.trusted = authority->trusted_tls_certificates();
      co.cluster = "bench";
      co.server_name = "auth";
      co.key = &*node_key;
      co.certificate = *node_cert;
      auto c = api::Client::connect(co);
      if (!c) {
        std::fprintf(stderr, "api_bench: connection %zu: %s\n", i, c.error().message.c_str());
        kill(child, SIGKILL);
        return 1;
      }
      clients.push_back(std::move(*c));
    }
    double cpu_before = cpu_seconds(child);
    std::atomic<bool> stop{false};
    std::atomic<size_t> failures{0};
    size_t threads = std::min<size_t>(2, n);
    std::vector<std::vector<double>> latencies(threads);
    std::vector<std::thread> drivers;
    auto start = Clock::now();
    for (size_t t = 0; t < threads; ++t) {
      drivers.emplace_back([&, t] {
        nlohmann::json body = {{"seq", 0}, {"status", "up"}, {"sessions", 3}, {"version", "0.10.0"}};
        for (size_t k = 0; !stop; ++k) {
          for (size_t i = t; i < clients.size() && !stop; i += threads) {
            body["seq"] = k;
            auto t0 = Clock::now();
            auto r = clients[i]->call_json("POST", "/v1/heartbeat", body);
            auto t1 = Clock::now();
            if (!r) ++failures;
            latencies[t].push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& d : drivers) d.join();
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    Run run;
    run.connections = n;
    run.seconds = elapsed;
    run.server_cpu_s = cpu_seconds(child) - cpu_before;
    run.rss_kib = status_kib(child, "VmRSS");
    run.hwm_kib = status_kib(child, "VmHWM");
    run.failures = failures;
    std::vector<double> all;
    for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    run.calls = all.size();
    if (!all.empty()) {
      run.p50_ms = all[all.size() / 2];
      run.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
    }
    clients.clear();
    kill(child, SIGTERM);
    waitpid(child, nullptr, 0);
    runs.push_back(run);
  }

  std::ostringstream out;
  out << "| connections | requests/s | p50 ms | p99 ms | server CPU us/request | server RSS MiB (peak) | "
         "rate vs 1 | p99 vs 1 | failed |\n|---|---|---|---|---|---|---|---|---|\n";
  const Run& base = runs.front();
  double base_rate = base.calls / base.seconds;
  char line[512];
  for (const auto& r : runs) {
    double rate = r.calls / r.seconds;
    std::snprintf(line, sizeof line, "| %zu | %.0f | %.3f | %.3f | %.0f | %.1f (%.1f) | %.2f | %.2f | %zu |\n",
                  r.connections, rate, r.p50_ms, r.p99_ms, r.calls ? r.server_cpu_s * 1e6 / r.calls : 0.0,
                  r.rss_kib / 1024.0, r.hwm_kib / 1024.0, rate / base_rate,
                  base.p99_ms > 0 ? r.p99_ms / base.p99_ms : 0.0, r.failures);
    out << line;
  }
  std::fputs(out.str().c_str(), stdout);
  if (!markdown.empty()) {
    std::ifstream loadavg("/proc/loadavg");
    std::string load1, load5;
    loadavg >> load1 >> load5;
    std::ofstream md(markdown);
    md << "# The cluster API's HTTPS transport (bench/api_bench.cpp)\n\n"
       << "A small JSON call (`POST /v1/heartbeat`, ~100 bytes each way) over N keep-alive mutual-TLS\n"
       << "connections, driven round robin by two client threads in another process than the server;\n"
       << "the server: one I/O thread and two workers (defaults). CPU and RSS are the server process's\n"
       << "(from /proc). Ratios are against N = 1 of the same run. Written by `bench/run.sh`; the\n"
       << "machine's load at the time shows in the numbers.\n\n"
       << out.str()
       << "\nThe host's load average at the end: " << load1 << " (1 min), " << load5
       << " (5 min); with other work running, the rates and p99 are noisy, the server's CPU per\n"
       << "request and its RSS per connection are the figures to compare.\n";
  }
  for (const auto& r : runs)
    if (r.failures) return 1;
  return 0;
}
