// The node's diagnostics listener (teleport.diag_addr), scraped over HTTP
// from a real `vigil start`: the metrics move during a session and add up
// to what session.end says, refusals are counted by reason, promtool takes
// the output, and the lost counters equal session.end's when the disk ring
// is made to lose (docs/operations.md, "Monitor").
#include <fcntl.h>
#include <sched.h>

#include <map>
#include <regex>

#include "../support/wait.hpp"
#include "node_fixture.hpp"

namespace e2e {
namespace {

using vigil::testing::eventually;

// Ports of this suite (ops: 32000-32499).
constexpr uint16_t kDiagPort = 32010;
constexpr uint16_t kLossDiagPort = 32011;

struct Http {
  int status = 0;
  std::string body;
};

Http get(uint16_t port, const std::string& path) {
  Outcome o = run({{"/usr/bin/curl", "-s", "-m", "10", "-w", "\n%{http_code}",
                    "http://127.0.0.1:" + std::to_string(port) + path}});
  Http h;
  size_t nl = o.out.rfind('\n');
  if (o.status != 0 || nl == std::string::npos) return h;
  h.status = std::atoi(o.out.c_str() + nl + 1);
  h.body = o.out.substr(0, nl);
  return h;
}

// name{labels} -> value, from the text format (comments skipped).
std::map<std::string, double> parse_metrics(const std::string& text) {
  std::map<std::string, double> m;
  for (const auto& line : split_lines(text)) {
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.rfind(' ');
    m[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return m;
}

std::map<std::string, double> scrape(uint16_t port) {
  Http h = get(port, "/metrics");
  EXPECT_EQ(h.status, 200);
  return parse_metrics(h.body);
}

double value(const std::map<std::string, double>& m, const std::string& series) {
  auto it = m.find(series);
  EXPECT_NE(it, m.end()) << series << " is not exposed";
  return it == m.end() ? -1 : it->second;
}

std::string kind_series(const std::string& name, const std::string& kind) {
  return name + "{kind=\"" + kind + "\"}";
}

class NodeMetrics : public SshNodeTest {
 protected:
  // The node file with diag_addr (and `extra` lines under enhanced_recording).
  void with_diag(uint16_t port, const std::string& ssh_extra = "",
                 const std::string& recording_extra = "") {
    std::string yaml = read_file(dir_ + "/node.yaml");
    yaml.replace(yaml.find("  data_dir:"), 0,
                 "  diag_addr: 127.0.0.1:" + std::to_string(port) + "\n");
    yaml.replace(yaml.find("  enhanced_recording:"), 0, ssh_extra);
    yaml += recording_extra;
    write_file(dir_ + "/node.yaml", yaml);
  }
};

TEST_F(NodeMetrics, MetricsMoveDuringASessionAndAddUpToSessionEnd) {
  with_diag(kDiagPort);
  start_node();
  EXPECT_EQ(get(kDiagPort, "/healthz").status, 200);
  ASSERT_TRUE(eventually([&] { return get(kDiagPort, "/readyz").status == 200; }));
  auto before = scrape(kDiagPort);
  EXPECT_EQ(value(before, kind_series("vigil_sessions_started_total", "exec")), 0);
  EXPECT_EQ(value(before, "vigil_logins_succeeded_total"), 0);

  // A session that runs until the test lets it end.
  const std::string go = dir_ + "/go";
  auto argv = ssh("user", "user-cert.pub");
  argv.push_back(std::string(kLogin) + "@127.0.0.1");
  argv.push_back("/bin/true; /bin/echo hello; while [ ! -e " + go + " ]; do sleep 0.05; done");
  Process session(Spawn{argv});
  std::map<std::string, double> during;
  ASSERT_TRUE(eventually([&] {
    during = scrape(kDiagPort);
    return value(during, kind_series("vigil_sessions_active", "exec")) == 1 &&
           value(during, kind_series("vigil_events_recorded_total", "command")) >= 2;
  })) << "no live session or no command counted while it ran";
  EXPECT_EQ(value(during, kind_series("vigil_sessions_started_total", "exec")), 1);
  EXPECT_EQ(value(during, "vigil_logins_succeeded_total"), 1);
  EXPECT_EQ(value(during, kind_series("vigil_hooks_attached", "command")), 1);
  EXPECT_GT(value(during, "vigil_audit_log_written_bytes_total"), 0);
  EXPECT_GT(value(during, "vigil_audit_log_write_seconds_count"), 0);
  EXPECT_GT(value(during, "vigil_recording_written_bytes_total"), 0);
  EXPECT_GT(value(during, kind_series("vigil_ring_buffer_size_bytes", "disk")), 0);

  write_file(go, "");
  Outcome o = session.wait();
  EXPECT_EQ(o.status, 0) << o.err;
  ASSERT_TRUE(eventually([&] { return audit_log().count("session.end") == 1; }));
  auto end = audit_log().of("session.end")[0];
  std::map<std::string, double> after;
  ASSERT_TRUE(eventually([&] {
    after = scrape(kDiagPort);
    return value(after, kind_series("vigil_sessions_active", "exec")) == 0;
  }));
  for (const char* kind : {"command", "disk", "network"}) {
    EXPECT_EQ(value(after, kind_series("vigil_events_recorded_total", kind)),
              end["recorded_events"].value(kind, 0.0)) << kind;
    EXPECT_EQ(value(after, kind_series("vigil_events_lost_total", kind)),
              end["lost_events"].value(kind, 0.0)) << kind;
  }
  EXPECT_GT(value(after, "vigil_audit_log_written_bytes_total"),
            value(during, "vigil_audit_log_written_bytes_total"));

  // A refused login is counted by its reason, never by who tried.
  sign_copy("expired", "-V 20200101:20200102");
  auto refused = ssh("expired", "expired-cert.pub");
  refused.push_back(std::string(kLogin) + "@127.0.0.1");
  refused.push_back("true");
  EXPECT_NE(run({refused}).status, 0);
  std::map<std::string, double> last;
  ASSERT_TRUE(eventually([&] {
    last = scrape(kDiagPort);
    for (const auto& [series, v] : last)
      if (series.starts_with("vigil_logins_refused_total{") && v >= 1) return true;
    return false;
  })) << "the refused login is not counted";
  Http text = get(kDiagPort, "/metrics");
  EXPECT_EQ(text.body.find(kUser), std::string::npos) << "a user name in the metrics";
  EXPECT_EQ(text.body.find(kLogin), std::string::npos) << "a login in the metrics";

  // promtool, Prometheus's own checker, takes the output.
  write_file(dir_ + "/metrics.txt", text.body);
  Outcome check = run({{"/bin/sh", "-c", "promtool check metrics < " + dir_ + "/metrics.txt"}});
  EXPECT_EQ(check.status, 0) << check.out << check.err;
}

TEST_F(NodeMetrics, TheDiagListenerAnswersOnlyItsPagesAndIsOffUnlessSet) {
  start_node();
  EXPECT_FALSE(port_open(kDiagPort)) << "diagnostics served without diag_addr";
  stop_node();
  with_diag(kDiagPort);
  start_node();
  EXPECT_EQ(get(kDiagPort, "/nothing").status, 404);
  Outcome post = run({{"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X",
                       "POST", "http://127.0.0.1:" + std::to_string(kDiagPort) + "/metrics"}});
  EXPECT_EQ(post.out, "405");
}

// The loss test: a 1-page disk ring, the engine's ring reader (vigil start
// is pinned to CPU 0) kept off its CPU by a SCHED_FIFO task above it while
// the session opens files as fast as it can on CPU 1.
TEST_F(NodeMetrics, LostCountersEqualSessionEndWhenTheRingLoses) {
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
    GTEST_SKIP() << "the loss test needs 2 CPUs (one for the storm, one held from the reader)";
  with_diag(kLossDiagPort, "  default_recording_kinds: [command, disk]\n",
            "    disk_buffer_size: 1\n");
  node_ = std::make_unique<Process>(
      Spawn{{"/usr/bin/taskset", "-c", "0", kNode, "start", "-c", dir_ + "/node.yaml"}});
  ASSERT_TRUE(eventually([&] { return port_open(port_); }));

  // Where the session's user and the test leave each other signs.
  const std::string flags = dir_ + "/flags";
  sh("mkdir -m 1777 " + flags);
  const std::string begun = flags + "/begun", held = flags + "/held", done = flags + "/done";
  // Once the session runs: CPU 0 held until the storm is done (at most 5 s,
  // if it never comes).
  pid_t hog = fork();
  if (hog == 0) {
    for (int i = 0; i < 600 && access(begun.c_str(), F_OK) != 0; ++i) usleep(50'000);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_param p{};
    p.sched_priority = 2;  // the reader runs at 1
    if (sched_setaffinity(0, sizeof one, &one) || sched_setscheduler(0, SCHED_FIFO, &p)) _exit(1);
    close(open(held.c_str(), O_CREAT | O_WRONLY, 0644));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (access(done.c_str(), F_OK) != 0 && std::chrono::steady_clock::now() < deadline) {
    }
    _exit(0);
  }
  auto argv = ssh("user", "user-cert.pub");
  argv.push_back(std::string(kLogin) + "@127.0.0.1");
  argv.push_back("exec taskset -c 1 /bin/sh -c 'touch " + begun + "; while [ ! -e " + held +
                 " ]; do sleep 0.05; done; "
                 "yes /etc/hostname | head -n 3000 | xargs cat >/dev/null; touch " + done + "'");
  Outcome o = run({argv}, 60000);
  int status = 0;
  waitpid(hog, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the SCHED_FIFO task failed";
  ASSERT_EQ(o.status, 0) << o.err << stop_node().err;
  ASSERT_TRUE(eventually([&] { return audit_log().count("session.end") == 1; }));
  auto end = audit_log().of("session.end")[0];
  ASSERT_GT(end["lost_events"].value("disk", 0.0), 0) << "the disk ring lost nothing: " << end;
  std::map<std::string, double> m;
  ASSERT_TRUE(eventually([&] {
    m = scrape(kLossDiagPort);
    return value(m, kind_series("vigil_sessions_active", "exec")) == 0;
  }));
  for (const char* kind : {"command", "disk", "network"}) {
    EXPECT_EQ(value(m, kind_series("vigil_events_lost_total", kind)),
              end["lost_events"].value(kind, 0.0)) << kind;
    EXPECT_EQ(value(m, kind_series("vigil_events_recorded_total", kind)),
              end["recorded_events"].value(kind, 0.0)) << kind;
  }
}

}  // namespace
}  // namespace e2e
