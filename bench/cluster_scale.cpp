// Scale of one auth service (issue 10 §5): N simulated nodes join it, then
// heartbeat over mutual TLS at a compressed interval while a share of them
// send events (POST /v1/events), against the real `vigil start` (auth
// service only) as a process apart, whose CPU, memory and descriptors are
// read from /proc.
//
// For each N of --nodes (default 100,10000; the first is the baseline of
// the same run), on a fresh data directory:
//   1. keys: each node's own TLS key (ECDSA P-256) and SSH host key
//      (Ed25519), made in this process before the clock starts;
//   2. join: POST /v1/join with one token (`vigilctl nodes add`), each node
//      its own keys, over a few anonymous connections that pin the CA;
//   3. connect: one keep-alive mutual-TLS connection per node, with the
//      identity the join gave it (as a node keeps its connection);
//   4. beat: --seconds of POST /v1/nodes/heartbeat, node i every
//      --interval seconds at its own phase (scheduled: N / interval a
//      second; a driver that falls behind goes on at once, so the rate done
//      shows how far the service kept up); the first --event-nodes nodes
//      also POST a batch of --batch events each interval (their acked_seq
//      is checked);
//   5. check: `vigilctl get nodes` lists every node; the auth service's
//      audit log holds every event sent.
// Reported: joins/s, heartbeats/s (scheduled and done), p50/p99 latency,
// errors, events/s, the auth process's CPU (user+sys seconds per wall
// second), RSS (and peak), open fds, threads.
//
//   cluster_scale --vigil BIN --vigilctl BIN [--nodes 100,10000]
//                 [--interval 3] [--seconds 30] [--event-nodes 100]
//                 [--batch 20] [--drivers 4] [--port 28025] [--markdown FILE]
//
// Needs root (vigil start does). Raises RLIMIT_NOFILE to 1,048,576 (the
// auth service started from here inherits it).
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/client.hpp"
#include "audit/base64.hpp"
#include "ca/key.hpp"
#include "ca/tls_ca.hpp"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace fs = std::filesystem;

struct Settings {
  std::string vigil, vigilctl, markdown;
  std::vector<size_t> nodes = {100, 10000};
  double interval = 3, seconds = 30;
  size_t event_nodes = 100, batch = 20, drivers = 4;
  uint16_t port = 28025;
};

struct Figures {
  size_t nodes = 0;
  double keygen_s = 0, join_s = 0, connect_s = 0, beat_s = 0;
  size_t join_errors = 0, connect_errors = 0;
  size_t beats = 0, beat_errors = 0, workers = 0, reconnects = 0, warmup_failures = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  size_t events = 0, event_errors = 0;
  double auth_cpu_join = 0, auth_cpu_beat = 0;  // CPU seconds per wall second
  double auth_cpu_us_per_beat = 0;
  long rss_kib = 0, hwm_kib = 0;
  size_t fds = 0, threads = 0;
  double bench_cpu_beat = 0;  // this process (the simulated nodes)
  size_t listed = 0, logged_events = 0;
  std::string first_error;
  // The auth API server's counters, from its last log line (at its stop).
  std::string counters_line;
  std::string list_error;  // why vigilctl get nodes listed fewer
  std::map<std::string, uint64_t> counters;
};

// "auth API ...: connections accepted=1 open=0 ...; closed by the server:
// handshake_failures=0 ...": the last such line of the log, and its pairs.
void read_counters(const std::string& log_path, Figures& f) {
  std::ifstream log(log_path);
  for (std::string line; std::getline(log, line);)
    if (line.find("auth API ") != std::string::npos && line.find(": connections accepted=") != std::string::npos)
      f.counters_line = line;
  std::istringstream words(f.counters_line);
  for (std::string w; words >> w;) {
    while (!w.empty() && w.back() == ';') w.pop_back();
    auto eq = w.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    try {
      f.counters[w.substr(0, eq)] = std::stoull(w.substr(eq + 1));
    } catch (...) {
    }
  }
}

uint64_t counter(const Figures& f, const std::string& key) {
  auto it = f.counters.find(key);
  return it == f.counters.end() ? 0 : it->second;
}

// Connections the auth service closed without the client asking
// (ServerCounters::closed_by_server).
uint64_t cut_by_server(const Figures& f) {
  uint64_t n = 0;
  for (const char* k : {"refused", "handshake_failures", "read_timeouts", "idle_closes", "read_errors", "write_failures"})
    n += counter(f, k);
  return n;
}

int fail(const std::string& what) {
  std::fprintf(stderr, "cluster_scale: %s\n", what.c_str());
  return 1;
}

double cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(f)), {});
  size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i == 14 || i == 15) ticks += std::stod(field);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

long status_field(pid_t pid, const std::string& key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  return -1;
}

size_t open_fds(pid_t pid) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

struct Run {
  int status = -1;
  std::string out, err;
};

Run run_command(const std::vector<std::string>& argv) {
  char out_path[] = "/tmp/cluster-scale-out-XXXXXX";
  char err_path[] = "/tmp/cluster-scale-err-XXXXXX";
  int out = mkstemp(out_path), err = mkstemp(err_path);
  Run r;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out, 1);
    dup2(err, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const char* p) {
    std::ifstream f(p);
    return std::string((std::istreambuf_iterator<char>(f)), {});
  };
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  close(out);
  close(err);
  unlink(out_path);
  unlink(err_path);
  return r;
}

// The auth service: the child of `vigil start` that runs cluster-services.
pid_t find_auth_process(pid_t vigil) {
  std::ifstream f("/proc/" + std::to_string(vigil) + "/task/" + std::to_string(vigil) + "/children");
  pid_t child = 0;
  while (f >> child) {
    std::ifstream cmd("/proc/" + std::to_string(child) + "/cmdline");
    std::string text((std::istreambuf_iterator<char>(cmd)), {});
    if (text.find("cluster-services") != std::string::npos) return child;
  }
  return 0;
}

std::string base64(std::string_view bytes) {
  std::string out;
  audit::append_base64(out, bytes);
  return out;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(static_cast<double>(v.size()) * p));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

std::string rfc3339_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  gmtime_r(&ts.tv_sec, &t);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", t.tm_year + 1900,
                t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec);
  return buf;
}

// What a worker process sends back, then `latencies` doubles.
struct WorkerResult {
  uint64_t connect_errors, beats, beat_errors, events, event_errors, latencies, reconnects, warmup_failures;
  double connect_s, cpu_s;
  char first_error[512];
};

void write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = write(fd, p, size);
    if (n <= 0) return;
    p += n;
    size -= static_cast<size_t>(n);
  }
}

bool read_all(int fd, void* data, size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    ssize_t n = read(fd, p, size);
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

struct Node {
  std::string name;
  std::optional<ca::PrivateKey> tls_key;
  std::string ssh_line;
  std::string uuid;
  ca::TlsCertificate cert{nullptr};
  std::unique_ptr<api::Client> client;
  uint64_t next_seq = 1;
};

// One configuration: a fresh auth service, N nodes.
Result<Figures> measure(const Settings& s, size_t n, const std::string& dir) {
  Figures f;
  f.nodes = n;
  const std::string addr = "127.0.0.1:" + std::to_string(s.port);
  const std::string cfg = dir + "/vigil.yaml";
  std::ofstream(cfg) << "version: v3\n"
                        "teleport:\n"
                        "  nodename: scale-auth\n"
                        "  data_dir: " << dir << "/data\n"
                        "auth_service:\n"
                        "  enabled: true\n"
                        "  cluster_name: scale\n"
                        "  listen_addr: " << addr << "\n"
                        "proxy_service:\n"
                        "  enabled: false\n"
                        "ssh_service:\n"
                        "  enabled: false\n";
  pid_t vigil = fork();
  if (vigil == 0) {
    int log = open((dir + "/vigil.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(log, 1);
    dup2(log, 2);
    // -v: the API server's counters are logged at info level too (and
    // always at its stop), read back below.
    execl(s.vigil.c_str(), s.vigil.c_str(), "-v", "start", "-c", cfg.c_str(), nullptr);
    _exit(127);
  }
  struct Stop {
    pid_t pid;
    ~Stop() {
      if (pid <= 0) return;
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  } stop_vigil{vigil};

  // Up when vigilctl can make a token.
  std::string token, pin;
  for (int i = 0; i < 600 && token.empty(); ++i) {
    if (waitpid(vigil, nullptr, WNOHANG) == vigil)
      return Error::of(Errc::unavailable, "vigil start exited: see " + dir + "/vigil.log");
    auto add = run_command({s.vigilctl, "-c", cfg, "nodes", "add", "--ttl=2h"});
    std::istringstream lines(add.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("The invite token: ", 0) == 0) token = line.substr(18);
      if (auto p = line.find("ca_pin: "); p != std::string::npos) pin = line.substr(p + 8);
    }
    if (token.empty()) usleep(100'000);
  }
  if (token.empty() || pin.empty())
    return Error::of(Errc::unavailable, "no join token from vigilctl nodes add: see " + dir + "/vigil.log");
  pid_t auth = find_auth_process(vigil);
  if (auth == 0) return Error::of(Errc::not_found, "no cluster-services child of vigil start");

  // 1. Keys, in parallel (two cores).
  std::vector<Node> nodes(n);
  auto t0 = Clock::now();
  {
    std::atomic<size_t> next{0};
    std::atomic<bool> bad{false};
    std::vector<std::thread> ts;
    for (int t = 0; t < 2; ++t)
      ts.emplace_back([&] {
        for (size_t i; (i = next++) < n;) {
          auto tls = ca::PrivateKey::generate(ca::KeyAlgorithm::ecdsa_p256);
          auto ssh = ca::PrivateKey::generate(ca::KeyAlgorithm::ed25519);
          if (!tls || !ssh) {
            bad = true;
            return;
          }
          nodes[i].name = "sim-" + std::to_string(i);
          nodes[i].tls_key.emplace(std::move(*tls));
          nodes[i].ssh_line = ssh->ssh_public_key_line();
        }
      });
    for (auto& t : ts) t.join();
    if (bad) return Error::of(Errc::internal, "cannot generate keys");
  }
  f.keygen_s = std::chrono::duration<double>(Clock::now() - t0).count();

  std::mutex error_mu;
  auto note_error = [&](const std::string& e) {
    std::lock_guard lock(error_mu);
    if (f.first_error.empty()) f.first_error = e;
  };

  // 2. Joins: --drivers anonymous connections, each pinning the CA.
  std::vector<ca::TlsCertificate> cas;
  std::mutex cas_mu;
  std::atomic<size_t> join_errors{0};
  double auth_cpu0 = cpu_seconds(auth);
  t0 = Clock::now();
  {
    std::atomic<size_t> next{0};
    std::vector<std::thread> ts;
    for (size_t t = 0; t < s.drivers; ++t)
      ts.emplace_back([&] {
        api::ClientOptions o;
        o.address = addr;
        o.ca_pin = pin;
        auto c = api::Client::connect(o);
        if (!c) {
          note_error("join connection: " + c.error().message);
          join_errors += n;
          return;
        }
        for (size_t i; (i = next++) < n;) {
          Node& node = nodes[i];
          json body = {{"token", token},
                       {"node_name", node.name},
                       {"addresses", {"127.0.0.1:" + std::to_string(30000 + i % 30000)}},
                       {"labels", {{"env", "scale"}, {"rack", std::to_string(i % 40)}}},
                       {"ssh_public_key", node.ssh_line},
                       {"tls_public_key", base64(node.tls_key->spki_der())}};
          auto r = (*c)->call_json("POST", "/v1/join", body);
          if (!r) {
            ++join_errors;
            note_error("join: " + r.error().message);
            continue;
          }
          auto cert = ca::TlsCertificate::from_pem(r->value("tls_certificate", ""));
          if (!cert) {
            ++join_errors;
            note_error("join: the certificate does not parse");
            continue;
          }
          node.cert = std::move(*cert);
          node.uuid = r->value("uuid", "");
          std::lock_guard lock(cas_mu);
          if (cas.empty())
            for (const auto& pem : (*r)["tls_ca_certificates"])
              if (auto ca = ca::TlsCertificate::from_pem(pem.get<std::string>())) cas.push_back(*ca);
        }
      });
    for (auto& t : ts) t.join();
  }
  f.join_s = std::chrono::duration<double>(Clock::now() - t0).count();
  f.auth_cpu_join = (cpu_seconds(auth) - auth_cpu0) / f.join_s;
  f.join_errors = join_errors;
  if (cas.empty()) return Error::of(Errc::unavailable, "no node joined: " + f.first_error);

  // 3 and 4 run in worker processes of at most per_worker nodes each:
  // a node's client holds 4 descriptors (socket, epoll, eventfd, timerfd),
  // and a process may hold only RLIMIT_NOFILE of them (20,000 here, which
  // root may not raise in this container).
  // 3. One mutual-TLS connection per node. 4. Heartbeats (and events) for
  // s.seconds: node i beats at start + (i / n + k) * interval, k = 0, 1, ...
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  const size_t per_worker = std::max<size_t>(1, (nofile.rlim_cur - 64) / 4);
  struct Worker {
    pid_t pid = 0;
    int ready = -1, go = -1, result = -1;
  };
  std::vector<Worker> workers;
  for (size_t first = 0; first < n; first += per_worker) {
    const size_t last = std::min(n, first + per_worker);
    int ready[2], go[2], result[2];
    if (pipe(ready) != 0 || pipe(go) != 0 || pipe(result) != 0) return Error::sys("pipe");
    pid_t pid = fork();
    if (pid < 0) return Error::sys("fork");
    if (pid == 0) {
      close(ready[0]);
      close(go[1]);
      close(result[0]);
      WorkerResult out{};
      std::string first_error;
      std::mutex mu;
      auto note = [&](const std::string& e) {
        std::lock_guard lock(mu);
        if (first_error.empty()) first_error = e;
      };
      auto connect_node = [&](Node& node) {
        api::ClientOptions o;
        o.address = addr;
        o.trusted = cas;
        o.cluster = "scale";
        o.server_name = "scale-auth";
        o.key = &*node.tls_key;
        o.certificate = node.cert;
        return api::Client::connect(o);
      };
      std::atomic<size_t> reconnects{0}, warmup_failures{0};
      // Unmeasured, as a node agent does: a heartbeat right after it
      // connects, then one every 20 s until the measure starts. (Silent
      // connections for the minutes 10,000 nodes take to connect were cut
      // by the server's idle timeout, and before that its read timeout.)
      auto warm_beat = [&](size_t i) {
        if (nodes[i].client &&
            !nodes[i].client->call_json("POST", "/v1/nodes/heartbeat",
                                        json{{"node_name", nodes[i].name},
                                             {"address", "127.0.0.1:" + std::to_string(30000 + i % 30000)},
                                             {"uuid", nodes[i].uuid}})) {
          ++warmup_failures;
          note("heartbeat while connecting: failed");
          nodes[i].client.reset();
        }
      };
      auto c0 = Clock::now();
      {
        std::atomic<size_t> next{first}, errors{0};
        std::vector<std::thread> ts;
        for (size_t t = 0; t < s.drivers; ++t)
          ts.emplace_back([&] {
            std::deque<std::pair<size_t, Clock::time_point>> mine;  // connected here, oldest beat first
            for (size_t i; (i = next++) < last;) {
              Node& node = nodes[i];
              if (node.uuid.empty()) continue;
              auto c = connect_node(node);
              if (!c) {
                ++errors;
                note("connect: " + c.error().message);
                continue;
              }
              node.client = std::move(*c);
              warm_beat(i);
              mine.emplace_back(i, Clock::now());
              while (!mine.empty() && Clock::now() - mine.front().second > std::chrono::seconds(20)) {
                size_t k = mine.front().first;
                mine.pop_front();
                warm_beat(k);
                mine.emplace_back(k, Clock::now());
              }
            }
          });
        for (auto& t : ts) t.join();
        out.connect_errors = errors;
      }
      out.connect_s = std::chrono::duration<double>(Clock::now() - c0).count();
      char byte = 1;
      int64_t start_ns = 0;
      if (write(ready[1], &byte, 1) != 1) _exit(1);
      // Until every worker has connected (minutes at 10,000 nodes), each
      // node goes on heartbeating every 10 to 20 s, unmeasured, as a real
      // node would (the server closes a connection idle for 120 s).
      for (;;) {
        pollfd p{go[0], POLLIN, 0};
        if (poll(&p, 1, 10'000) > 0) break;
        for (size_t i = first; i < last; ++i) warm_beat(i);
      }
      out.warmup_failures = warmup_failures;
      if (read(go[0], &start_ns, sizeof start_ns) != sizeof start_ns) _exit(1);
      const Clock::time_point start{std::chrono::nanoseconds(start_ns)};
      const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s.seconds));
      std::vector<std::vector<double>> lat(s.drivers);
      std::atomic<size_t> beats{0}, beat_errors{0}, events{0}, event_errors{0};
      double cpu0 = self_cpu();
      std::vector<std::thread> ts;
      for (size_t t = 0; t < s.drivers; ++t)
        ts.emplace_back([&, t] {
          std::vector<std::string> lines(s.batch);
          for (size_t k = 0;; ++k) {
            for (size_t i = first + t; i < last; i += s.drivers) {
              auto due = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                     s.interval * (static_cast<double>(k) + static_cast<double>(i) / static_cast<double>(n))));
              if (due >= end) return;
              std::this_thread::sleep_until(due);
              Node& node = nodes[i];
              if (!node.client) {
                // As the node agent does: a heartbeat that failed drops the
                // connection, the next one connects again.
                auto c = connect_node(node);
                ++reconnects;
                if (!c) {
                  ++beat_errors;
                  note("reconnect: " + c.error().message);
                  continue;
                }
                node.client = std::move(*c);
              }
              json body = {{"node_name", node.name},
                           {"address", "127.0.0.1:" + std::to_string(30000 + i % 30000)},
                           {"labels", {{"env", "scale"}, {"rack", std::to_string(i % 40)}}},
                           {"uuid", node.uuid}};
              auto b0 = Clock::now();
              auto r = node.client->call_json("POST", "/v1/nodes/heartbeat", body);
              lat[t].push_back(std::chrono::duration<double, std::milli>(Clock::now() - b0).count());
              if (!r) {
                ++beat_errors;
                note("heartbeat: " + r.error().message);
                node.client.reset();
                continue;
              } else {
                ++beats;
              }
              if (i >= s.event_nodes) continue;
              std::string now = rfc3339_now();
              for (size_t e = 0; e < s.batch; ++e)
                lines[e] = json{{"event", "session.command"}, {"code", "T4000I"}, {"time", now},
                                {"sid", "5ca1e000-0000-4000-8000-" + std::to_string(100000000000 + i)},
                                {"user", "alice"}, {"login", "root"}, {"program", "make"},
                                {"argv", {"-j2", "scale-bench"}}, {"pid", 4000 + e},
                                {"ppid", 3999}, {"cgroup_id", 4242}, {"return_code", 0},
                                {"path", "/usr/bin/make"}}
                               .dump();
              json batch = {{"first_seq", node.next_seq}, {"server_id", node.uuid},
                            {"server_hostname", node.name}, {"events", lines}};
              auto a = node.client->call_json("POST", "/v1/events", batch);
              uint64_t want = node.next_seq + s.batch - 1;
              if (!a || a->value("acked_seq", uint64_t{0}) != want) {
                event_errors += s.batch;
                note(a ? "events: acked " + a->dump() + ", sent up to " + std::to_string(want)
                       : "events: " + a.error().message);
              } else {
                events += s.batch;
                node.next_seq = want + 1;
              }
            }
          }
        });
      for (auto& t : ts) t.join();
      out.cpu_s = self_cpu() - cpu0;
      out.reconnects = reconnects;
      out.beats = beats;
      out.beat_errors = beat_errors;
      out.events = events;
      out.event_errors = event_errors;
      std::vector<double> all;
      for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
      out.latencies = all.size();
      std::snprintf(out.first_error, sizeof out.first_error, "%s", first_error.c_str());
      write_all(result[1], &out, sizeof out);
      write_all(result[1], all.data(), all.size() * sizeof(double));
      _exit(0);
    }
    close(ready[1]);
    close(go[0]);
    close(result[1]);
    workers.push_back(Worker{pid, ready[0], go[1], result[0]});
  }
  auto reap = [&] {
    for (auto& w : workers) {
      close(w.ready);
      close(w.go);
      close(w.result);
      waitpid(w.pid, nullptr, 0);
    }
  };
  t0 = Clock::now();
  for (auto& w : workers) {
    char byte = 0;
    if (read(w.ready, &byte, 1) != 1) {
      for (auto& x : workers) kill(x.pid, SIGKILL);
      reap();
      return Error::of(Errc::internal, "a worker process died while connecting");
    }
  }
  f.connect_s = std::chrono::duration<double>(Clock::now() - t0).count();
  auth_cpu0 = cpu_seconds(auth);
  const auto start = Clock::now() + std::chrono::milliseconds(200);
  const int64_t start_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch()).count();
  for (auto& w : workers) write_all(w.go, &start_ns, sizeof start_ns);
  std::vector<double> all;
  double nodes_cpu = 0;
  for (auto& w : workers) {
    WorkerResult r{};
    if (!read_all(w.result, &r, sizeof r)) {
      reap();
      return Error::of(Errc::internal, "a worker process died while beating");
    }
    std::vector<double> lat(r.latencies);
    read_all(w.result, lat.data(), lat.size() * sizeof(double));
    all.insert(all.end(), lat.begin(), lat.end());
    f.connect_errors += r.connect_errors;
    f.reconnects += r.reconnects;
    f.warmup_failures += r.warmup_failures;
    f.beats += r.beats;
    f.beat_errors += r.beat_errors;
    f.events += r.events;
    f.event_errors += r.event_errors;
    nodes_cpu += r.cpu_s;
    if (f.first_error.empty() && r.first_error[0]) f.first_error = r.first_error;
  }
  // Every worker has answered: each stops at start + s.seconds.
  f.beat_s = std::chrono::duration<double>(Clock::now() - start).count();
  f.auth_cpu_beat = (cpu_seconds(auth) - auth_cpu0) / f.beat_s;
  f.rss_kib = status_field(auth, "VmRSS");
  f.hwm_kib = status_field(auth, "VmHWM");
  f.threads = static_cast<size_t>(status_field(auth, "Threads"));
  f.fds = open_fds(auth);  // the workers still hold their connections
  reap();
  f.workers = workers.size();
  f.bench_cpu_beat = nodes_cpu / f.beat_s;
  f.auth_cpu_us_per_beat = f.beats ? f.auth_cpu_beat * f.beat_s * 1e6 / static_cast<double>(f.beats + f.events / std::max<size_t>(1, s.batch)) : 0;
  f.p50_ms = percentile(all, 0.50);
  f.p99_ms = percentile(all, 0.99);
  f.max_ms = all.empty() ? 0 : *std::max_element(all.begin(), all.end());
  // 5. What the auth service holds: every node listed, every event logged.
  auto listed = run_command({s.vigilctl, "-c", cfg, "get", "nodes", "--format", "json"});
  auto parsed = json::parse(listed.out, nullptr, false);
  if (parsed.is_array()) f.listed = parsed.size();
  else if (parsed.is_object())
    for (const auto& [k, v] : parsed.items())
      if (v.is_array()) f.listed = v.size();
  if (f.listed != f.nodes)
    f.list_error = "vigilctl get nodes: exit status " + std::to_string(listed.status) + ", " +
                    std::to_string(listed.out.size()) + " bytes out: " + listed.err.substr(0, 400);
  kill(vigil, SIGTERM);
  waitpid(vigil, nullptr, 0);
  stop_vigil.pid = 0;
  read_counters(dir + "/vigil.log", f);
  std::ifstream log(dir + "/data/log/events.log");
  for (std::string line; std::getline(log, line);)
    if (line.find("scale-bench") != std::string::npos) ++f.logged_events;
  return f;
}

std::string commas(double v) {
  std::string s = std::to_string(static_cast<long long>(v + 0.5));
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
#ifdef VIGIL_BENCH_VIGIL
  s.vigil = VIGIL_BENCH_VIGIL;
  s.vigilctl = VIGIL_BENCH_VIGILCTL;
#endif
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--vigil") s.vigil = v;
    else if (a == "--vigilctl") s.vigilctl = v;
    else if (a == "--markdown") s.markdown = v;
    else if (a == "--interval") s.interval = std::stod(v);
    else if (a == "--seconds") s.seconds = std::stod(v);
    else if (a == "--event-nodes") s.event_nodes = std::stoul(v);
    else if (a == "--batch") s.batch = std::max<size_t>(1, std::stoul(v));
    else if (a == "--drivers") s.drivers = std::max<size_t>(1, std::stoul(v));
    else if (a == "--port") s.port = static_cast<uint16_t>(std::stoul(v));
    else if (a == "--nodes") {
      s.nodes.clear();
      std::istringstream in(v);
      for (std::string x; std::getline(in, x, ',');) s.nodes.push_back(std::stoul(x));
    } else {
      return fail("unknown option " + a + " (see the comment at the top of bench/cluster_scale.cpp)");
    }
  }
  if (getuid() != 0) return fail("needs root: vigil start runs the auth service as the vigil user");
  if (s.nodes.empty() || s.vigil.empty() || s.vigilctl.empty())
    return fail("give --nodes, --vigil and --vigilctl");
  // Each simulated node's client holds a socket, an epoll fd and an
  // eventfd; the auth service one socket per node: 1,048,576 (the kernel's
  // nr_open default) for both, as root may set it.
  rlimit nofile{1u << 20, 1u << 20};
  if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) {
    getrlimit(RLIMIT_NOFILE, &nofile);
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  signal(SIGPIPE, SIG_IGN);

  std::vector<Figures> runs;
  for (size_t n : s.nodes) {
    char tmpl[] = "/tmp/vigil-cluster-scale-XXXXXX";
    if (!mkdtemp(tmpl)) return fail("mkdtemp");
    std::string dir = tmpl;
    chmod(dir.c_str(), 0755);
    std::fprintf(stderr, "cluster_scale: %zu nodes ...\n", n);
    auto f = measure(s, n, dir);
    if (!f) return fail(f.error().message);
    if (!getenv("VIGIL_KEEP")) fs::remove_all(dir);
    runs.push_back(*f);
  }

  std::ostringstream out;
  char line[1024];
  out << "| nodes | joins/s | connects/s | heartbeats/s scheduled | heartbeats/s done | p50 ms | p99 ms | max ms "
         "| errors | events/s | auth CPU (s/s) joining | auth CPU (s/s) beating | auth CPU us/call | auth RSS MiB (peak) "
         "| auth fds | auth threads | nodes CPU (s/s), processes | connections cut by the auth service | 503 busy |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& f : runs) {
    std::snprintf(line, sizeof line,
                  "| %s | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.1f | %zu | %.0f | %.2f | %.2f | %.0f | %.0f (%.0f) | %zu "
                  "| %zu | %.2f, %zu | %s | %s |\n",
                  commas(static_cast<double>(f.nodes)).c_str(), static_cast<double>(f.nodes - f.join_errors) / f.join_s,
                  static_cast<double>(f.nodes - f.connect_errors) / f.connect_s,
                  static_cast<double>(f.nodes) / s.interval, static_cast<double>(f.beats) / f.beat_s, f.p50_ms,
                  f.p99_ms, f.max_ms, f.join_errors + f.connect_errors + f.beat_errors + f.event_errors,
                  static_cast<double>(f.events) / f.beat_s, f.auth_cpu_join, f.auth_cpu_beat,
                  f.auth_cpu_us_per_beat, static_cast<double>(f.rss_kib) / 1024, static_cast<double>(f.hwm_kib) / 1024,
                  f.fds, f.threads, f.bench_cpu_beat, f.workers,
                  f.counters_line.empty() ? "?" : commas(static_cast<double>(cut_by_server(f))).c_str(),
                  f.counters_line.empty() ? "?" : commas(static_cast<double>(counter(f, "queue_full"))).c_str());
    out << line;
  }
  const Figures& base = runs.front();
  std::ostringstream ratios;
  for (const auto& f : runs) {
    std::snprintf(line, sizeof line,
                  "- %s nodes against %s: auth CPU per call %.2fx, p99 %.2fx, RSS %.2fx (%.1f KiB more per node); "
                  "%zu of %zu nodes listed by `vigilctl get nodes`, %zu of %zu events in the audit log; keys %.1f s\n",
                  commas(static_cast<double>(f.nodes)).c_str(), commas(static_cast<double>(base.nodes)).c_str(),
                  base.auth_cpu_us_per_beat > 0 ? f.auth_cpu_us_per_beat / base.auth_cpu_us_per_beat : 0.0,
                  base.p99_ms > 0 ? f.p99_ms / base.p99_ms : 0.0,
                  base.rss_kib > 0 ? static_cast<double>(f.rss_kib) / static_cast<double>(base.rss_kib) : 0.0,
                  f.nodes > base.nodes ? static_cast<double>(f.rss_kib - base.rss_kib) /
                                             static_cast<double>(f.nodes - base.nodes)
                                       : 0.0,
                  f.listed, f.nodes, f.logged_events, f.events, f.keygen_s);
    ratios << line;
    std::snprintf(line, sizeof line,
                  "  - connections the server had closed: %zu heartbeats failed while every worker connected "
                  "(unmeasured), %zu reconnects while beating\n",
                  f.warmup_failures, f.reconnects);
    ratios << line;
    if (!f.first_error.empty()) ratios << "  - first error: " << f.first_error << "\n";
    if (!f.list_error.empty()) ratios << "  - " << f.list_error << "\n";
    std::string line_counters = f.counters_line;
    if (auto p = line_counters.find("auth API "); p != std::string::npos) line_counters = line_counters.substr(p);
    ratios << "  - the auth API server's counters at its stop: "
           << (line_counters.empty() ? std::string("(no counters line in vigil.log)") : "`" + line_counters + "`") << "\n";
  }
  std::fputs(out.str().c_str(), stdout);
  std::fputs(ratios.str().c_str(), stdout);
  if (!s.markdown.empty()) {
    std::ifstream loadavg("/proc/loadavg");
    std::string load1, load5;
    loadavg >> load1 >> load5;
    std::ofstream md(s.markdown, std::ios::app);
    std::string nodes;
    for (size_t n : s.nodes) nodes += (nodes.empty() ? "" : ",") + std::to_string(n);
    md << "\nCommand: `bench/cluster_scale --nodes " << nodes << " --interval " << s.interval << " --seconds "
       << s.seconds << " --event-nodes " << s.event_nodes << " --batch " << s.batch << " --drivers " << s.drivers
       << "` (load average at the end: " << load1 << ", " << load5 << ")\n\n"
       << out.str() << "\n" << ratios.str();
  }
  bool bad = false;
  for (const auto& f : runs)
    if (f.join_errors || f.connect_errors || f.beat_errors || f.event_errors || f.listed != f.nodes ||
        f.logged_events != f.events || f.counters_line.empty() || cut_by_server(f) > 0)
      bad = true;
  return bad ? 3 : 0;
}
