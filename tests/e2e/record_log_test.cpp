// End to end: `vigil record` writes a session's audit log as JSON lines in
// the shape of Teleport's enhanced session recording. Each test runs the
// real binary on a real command and checks what the file says, field by
// field.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <map>
#include <set>

#include "fixture.hpp"

namespace e2e {
namespace {

using json = nlohmann::ordered_json;
using Keys = std::vector<std::string>;

// The guide's obfuscation example, with `ls -la` hidden in base64, then a
// plain file read.
const std::vector<std::string> kPipeline = {
    "sh", "-c", "echo bHMgLWxh | base64 --decode | sh >/dev/null; cat /etc/hostname"};

// Each event type's keys, in the (alphabetical) order Vigil writes them.
// session.command is the guide's sample exactly; session.network is the
// guide's sample plus ppid, net_ns and protocol (a connect's result adds
// result, return_code and src_port); session.disk has the fields the guide names
// (path, flags, return_code, pid, program, cgroup_id) plus the common ones
// and ppid, and for a successful open kernel_path (what was opened). A
// successful command has kernel_path too (the file the kernel ran).
const Keys kCommandKeys = {
    "argv", "cgroup_id", "cluster_name", "code", "ei", "event", "kernel_path", "login",
    "namespace", "path", "pid", "ppid", "program", "return_code", "server_hostname", "server_id",
    "sid", "time", "uid", "user"};
const Keys kFailedCommandKeys = {
    "argv", "cgroup_id", "cluster_name", "code", "ei", "event", "login", "namespace", "path",
    "pid", "ppid", "program", "return_code", "server_hostname", "server_id", "sid", "time", "uid",
    "user"};
const Keys kDiskKeys = {
    "cgroup_id", "cluster_name", "code", "ei", "event", "flags", "kernel_path", "login",
    "namespace", "path", "pid", "ppid", "program", "return_code", "server_hostname", "server_id",
    "sid", "time", "uid", "user"};
const Keys kFailedDiskKeys = {
    "cgroup_id", "cluster_name", "code", "ei", "event", "flags", "login", "namespace", "path",
    "pid", "ppid", "program", "return_code", "server_hostname", "server_id", "sid", "time", "uid",
    "user"};
const Keys kNetworkKeys = {
    "action", "cgroup_id", "cluster_name", "code", "dst_addr", "dst_port", "ei", "event",
    "login", "namespace", "net_ns", "operation", "pid", "ppid", "program", "protocol",
    "server_hostname", "server_id", "sid", "src_addr", "time", "uid", "user", "version"};
const Keys kNetworkResultKeys = {
    "action", "cgroup_id", "cluster_name", "code", "dst_addr", "dst_port", "ei", "event",
    "login", "namespace", "net_ns", "operation", "pid", "ppid", "program", "protocol",
    "result", "return_code", "server_hostname", "server_id", "sid", "src_addr", "src_port",
    "time", "uid", "user", "version"};
// A unix socket connect (programs' NSS lookups reach nscd this way): no addresses.
const Keys kUnixNetworkKeys = {
    "action", "cgroup_id", "cluster_name", "code", "ei", "event", "login", "namespace", "net_ns",
    "operation", "pid", "ppid", "program", "protocol", "server_hostname", "server_id", "sid",
    "time", "uid", "unix_path", "user"};
const Keys kStartKeys = {
    "cluster_name", "code", "ei", "event", "initial_command", "login", "namespace", "sealed",
    "server_hostname", "server_id", "sid", "time", "uid", "user"};
const Keys kEndKeys = {
    "cluster_name", "code", "ei", "enhanced_recording", "enhanced_recording_kinds", "event",
    "interactive", "login", "lost_events", "namespace", "participants", "recorded_events",
    "server_hostname", "server_id", "session_start", "session_stop", "sid", "time", "uid",
    "user"};
// The guide's session.end sample, all of whose keys Vigil writes too.
const Keys kGuideEndKeys = {
    "code", "ei", "enhanced_recording", "event", "interactive", "namespace", "participants",
    "server_id", "sid", "time", "uid", "user"};

std::string hostname_file() { return read_file("/etc/hostname"); }

// One run of `vigil record -o FILE` and what came of it.
struct Recording {
  Outcome outcome;
  Log log;
  pid_t vigil_pid = 0;
  int64_t before_ns = 0, after_ns = 0;
};

class RecordLog : public VigilTest {
 protected:
  Recording record_to(const std::string& file, const std::vector<std::string>& options,
                      const std::vector<std::string>& command) {
    std::vector<std::string> opts = {"-o", file};
    opts.insert(opts.end(), options.begin(), options.end());
    Recording r;
    r.before_ns = now_ns();
    Process p({.argv = record_argv(opts, command)});
    r.vigil_pid = p.pid();
    r.outcome = p.wait();
    r.after_ns = now_ns();
    r.log = read_log(file);
    return r;
  }
  Recording record_all_kinds(const std::vector<std::string>& command) {
    return record_to(path("events.json"), {"--events", "command,disk,network"}, command);
  }
};

// The only event of `name` whose field `key` is `value`.
json only(const Log& log, const std::string& name, const std::string& key, json value) {
  std::vector<json> found;
  for (const auto& e : log.of(name))
    if (e.contains(key) && e[key] == value) found.push_back(e);
  EXPECT_EQ(found.size(), 1u) << "events " << name << " with " << key << "=" << value.dump();
  return found.empty() ? json::object() : found[0];
}

json counts(uint64_t command, uint64_t disk, uint64_t network) {
  return json{{"command", command}, {"disk", disk}, {"network", network}};
}

// A TCP listener on a loopback address, so that a connect from inside the
// session completes (through the backlog; nothing needs to accept).
class Listener {
 public:
  explicit Listener(bool v6) {
    fd_ = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof *a;
    }
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) || listen(fd_, 16) ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len))
      ADD_FAILURE() << "loopback listener (" << (v6 ? "::1" : "127.0.0.1")
                    << "): " << strerror(errno);
    port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                     : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }
  ~Listener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Network events over IP; unix connects depend on the host (NSS, nscd).
std::vector<json> ip_network(const Log& log) {
  std::vector<json> out;
  for (auto& n : log.of("session.network"))
    if (n.value("protocol", "") != "unix") out.push_back(n);
  return out;
}
size_t unix_network(const Log& log) { return log.count("session.network") - ip_network(log).size(); }

TEST_F(RecordLog, FileRunsFromSessionStartToSessionEnd) {
  REQUIRE_ROOT();
  auto r = record_all_kinds(kPipeline);
  EXPECT_EQ(r.outcome.status, 0);
  EXPECT_EQ(r.outcome.out, hostname_file()) << "the command's stdout passes through unchanged";
  EXPECT_EQ(r.outcome.err, "") << "with -o, vigil says nothing on stderr";
  const Log& log = r.log;
  ASSERT_GE(log.events.size(), 2u);
  ASSERT_EQ(log.lines.size(), log.events.size());

  json start = log.events.front();
  EXPECT_EQ(start["event"], "session.start");
  EXPECT_EQ(start["code"], "T2000I");
  EXPECT_EQ(start["initial_command"], json(kPipeline));

  json end = log.events.back();
  EXPECT_EQ(end["event"], "session.end");
  EXPECT_EQ(end["code"], "T2004I");
  EXPECT_EQ(end["enhanced_recording"], true);
  EXPECT_EQ(end["interactive"], false);
  EXPECT_EQ(end["participants"], json::array({"root"}));
  EXPECT_EQ(end["enhanced_recording_kinds"], json::array({"command", "disk", "network"}));

  EXPECT_EQ(log.count("session.start"), 1u);
  EXPECT_EQ(log.count("session.end"), 1u);
  for (size_t i = 1; i + 1 < log.events.size(); ++i) {
    std::string ev = log.events[i].value("event", "");
    EXPECT_TRUE(ev == "session.command" || ev == "session.disk" || ev == "session.network")
        << "line " << i + 1 << ": " << log.lines[i];
  }
}

TEST_F(RecordLog, SessionEndCountsEqualTheLinesOfEachKind) {
  REQUIRE_ROOT();
  auto r = record_all_kinds(kPipeline);
  ASSERT_EQ(r.outcome.status, 0) << r.outcome.err;
  ASSERT_GE(r.log.events.size(), 3u) << "no start, command and end in the log";
  json end = r.log.events.back();
  EXPECT_EQ(end["recorded_events"],
            counts(r.log.count("session.command"), r.log.count("session.disk"),
                   r.log.count("session.network")));
  EXPECT_EQ(end["lost_events"], counts(0, 0, 0));
  EXPECT_EQ(r.log.count("session.command"), 5u);
  EXPECT_GE(r.log.count("session.disk"), 1u);
  EXPECT_EQ(ip_network(r.log).size(), 0u);
}

TEST_F(RecordLog, EiCountsFromZeroInFileOrder) {
  REQUIRE_ROOT();
  auto r = record_all_kinds(kPipeline);
  ASSERT_EQ(r.outcome.status, 0) << r.outcome.err;
  ASSERT_GE(r.log.events.size(), 3u) << "no start, command and end in the log";
  for (size_t i = 0; i < r.log.events.size(); ++i)
    EXPECT_EQ(r.log.events[i]["ei"], i) << "line " << i + 1 << ": " << r.log.lines[i];
}

TEST_F(RecordLog, EveryLineNamesTheSameSessionUserAndNode) {
  REQUIRE_ROOT();
  auto r = record_all_kinds(kPipeline);
  ASSERT_FALSE(r.log.events.empty());
  const std::string sid = r.log.events[0].value("sid", "");
  EXPECT_TRUE(is_uuid(sid)) << sid;
  const std::string server_id = host_uuid();
  EXPECT_TRUE(is_uuid(server_id)) << "data_dir/host_uuid: " << server_id;
  for (size_t i = 0; i < r.log.events.size(); ++i) {
    json e = r.log.events[i];
    SCOPED_TRACE("line " + std::to_string(i + 1) + ": " + r.log.lines[i]);
    EXPECT_EQ(e["sid"], sid);
    EXPECT_EQ(e["login"], "root");
    EXPECT_EQ(e["user"], "root");
    EXPECT_EQ(e["server_id"], server_id);
    EXPECT_EQ(e["server_hostname"], kNodeName);
    EXPECT_EQ(e["cluster_name"], kClusterName);
    EXPECT_EQ(e["namespace"], "default");
  }
}

TEST_F(RecordLog, TimesAreRfc3339UtcAndNeverGoBack) {
  REQUIRE_ROOT();
  auto r = record_all_kinds(kPipeline);
  ASSERT_EQ(r.outcome.status, 0) << r.outcome.err;
  ASSERT_GE(r.log.events.size(), 3u) << "no start, command and end in the log";
  int64_t previous = 0;
  for (size_t i = 0; i < r.log.events.size(); ++i) {
    SCOPED_TRACE("line " + std::to_string(i + 1) + ": " + r.log.lines[i]);
    auto t = parse_rfc3339_utc(r.log.events[i].value("time", ""));
    ASSERT_TRUE(t.has_value()) << "not RFC 3339 UTC with a fraction";
    EXPECT_GE(*t, previous) << "time goes back";
    EXPECT_GE(*t, r.before_ns) << "before vigil started";
    EXPECT_LE(*t, r.after_ns) << "after vigil ended";
    previous = *t;
  }
  json start = r.log.events.front();
  json end = r.log.events.back();
  EXPECT_EQ(end["session_start"], start["time"]);
  EXPECT_EQ(end["session_stop"], end["time"]);
}

TEST_F(RecordLog, EveryEventHasItsOwnUuid) {
  REQUIRE_ROOT();
  auto r = record_all_kinds(kPipeline);
  ASSERT_EQ(r.outcome.status, 0) << r.outcome.err;
  ASSERT_GE(r.log.events.size(), 3u) << "no start, command and end in the log";
  std::set<std::string> uids;
  for (auto& e : r.log.events) {
    const std::string uid = e.value("uid", "");
    EXPECT_TRUE(is_uuid(uid)) << uid;
    EXPECT_TRUE(uids.insert(uid).second) << "uid " << uid << " repeats";
  }
  EXPECT_EQ(uids.count(r.log.events[0].value("sid", "")), 0u) << "an event uid equals the sid";
}

TEST_F(RecordLog, ObfuscatedPipelineShowsEveryCommandItRan) {
  REQUIRE_ROOT();
  auto r = record_all_kinds(kPipeline);
  auto commands = r.log.of("session.command");
  ASSERT_EQ(commands.size(), 5u) << r.log.text;
  for (auto& c : commands) {
    EXPECT_EQ(c["code"], "T4000I");
    EXPECT_EQ(c["return_code"], 0);
    EXPECT_EQ(c["cgroup_id"], commands[0]["cgroup_id"]) << "one session, one cgroup";
  }
  EXPECT_NE(commands[0]["cgroup_id"], 0);

  // The session's first process is the outer shell, vigil's own child.
  json outer = commands[0];
  EXPECT_EQ(outer["program"], "sh");
  EXPECT_EQ(outer["path"], "/usr/bin/sh");
  EXPECT_EQ(outer["argv"], json({kPipeline[1], kPipeline[2]}));
  EXPECT_EQ(outer["ppid"], r.vigil_pid);

  json base64 = only(r.log, "session.command", "program", "base64");
  EXPECT_EQ(base64["path"], "/usr/bin/base64");
  EXPECT_EQ(base64["argv"], json::array({"--decode"}));
  EXPECT_EQ(base64["ppid"], outer["pid"]);

  // What base64 decoded: a second shell reading `ls -la` on its stdin.
  std::vector<json> inner;
  for (auto& c : commands)
    if (c["program"] == "sh" && c["pid"] != outer["pid"]) inner.push_back(c);
  ASSERT_EQ(inner.size(), 1u);
  EXPECT_EQ(inner[0]["path"], "/usr/bin/sh");
  EXPECT_EQ(inner[0]["argv"], json::array());
  EXPECT_EQ(inner[0]["ppid"], outer["pid"]);

  json ls = only(r.log, "session.command", "program", "ls");
  EXPECT_EQ(ls["path"], "/usr/bin/ls");
  EXPECT_EQ(ls["argv"], json::array({"-la"}));
  EXPECT_EQ(ls["ppid"], inner[0]["pid"]);

  json cat = only(r.log, "session.command", "program", "cat");
  EXPECT_EQ(cat["path"], "/usr/bin/cat");
  EXPECT_EQ(cat["argv"], json::array({"/etc/hostname"}));
  EXPECT_EQ(cat["ppid"], outer["pid"]);
}

TEST_F(RecordLog, FileReadGivesADiskEvent) {
  REQUIRE_ROOT();
  auto r = record_all_kinds(kPipeline);
  json cat = only(r.log, "session.command", "program", "cat");
  json open = only(r.log, "session.disk", "path", "/etc/hostname");
  EXPECT_EQ(open["code"], "T4001I");
  EXPECT_EQ(open["flags"], 0) << "O_RDONLY";
  EXPECT_EQ(open["return_code"], 0);
  EXPECT_EQ(open["program"], "cat");
  EXPECT_EQ(open["pid"], cat["pid"]);
  EXPECT_EQ(open["ppid"], cat["ppid"]);
  EXPECT_EQ(open["cgroup_id"], cat["cgroup_id"]);
  // `sh >/dev/null`: the outer shell opened it for writing, truncating.
  bool devnull = false;
  for (auto& d : r.log.of("session.disk"))
    if (d["path"] == "/dev/null" && d["return_code"] == 0 &&
        d["flags"] == (O_WRONLY | O_CREAT | O_TRUNC))
      devnull = true;
  EXPECT_TRUE(devnull) << r.log.text;
}

TEST_F(RecordLog, EachEventTypeHasExactlyTheGuidesKeys) {
  REQUIRE_ROOT();
  Listener listener(false);
  auto r = record_all_kinds(
      {"bash", "-c",
       "cat /etc/hostname >/dev/null; exec 3<>/dev/tcp/127.0.0.1/" +
           std::to_string(listener.port())});
  ASSERT_EQ(r.outcome.status, 0) << r.outcome.err;
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < r.log.events.size(); ++i) {
    json e = r.log.events[i];
    const std::string ev = e.value("event", "");
    SCOPED_TRACE("line " + std::to_string(i + 1) + ": " + r.log.lines[i]);
    ++seen[ev];
    if (ev == "session.command")
      EXPECT_EQ(keys_of(e), e["return_code"] == 0 ? kCommandKeys : kFailedCommandKeys);
    else if (ev == "session.disk")
      EXPECT_EQ(keys_of(e), e["return_code"] == 0 ? kDiskKeys : kFailedDiskKeys);
    else if (ev == "session.network")
      EXPECT_EQ(keys_of(e), e["protocol"] == "unix"  ? kUnixNetworkKeys
                            : e["operation"] == 3 ? kNetworkResultKeys
                                                  : kNetworkKeys);
    else if (ev == "session.start") EXPECT_EQ(keys_of(e), kStartKeys);
    else if (ev == "session.end") EXPECT_EQ(keys_of(e), kEndKeys);
    else ADD_FAILURE() << "unexpected event " << ev;
  }
  for (const char* ev : {"session.start", "session.command", "session.disk", "session.network",
                         "session.end"})
    EXPECT_GE(seen[ev], 1u) << "no " << ev << " to check the keys of";
  // The recorded counts, lost counts and kinds name the kinds and nothing else.
  json end = r.log.events.back();
  EXPECT_EQ(keys_of(end["recorded_events"]), (Keys{"command", "disk", "network"}));
  EXPECT_EQ(keys_of(end["lost_events"]), (Keys{"command", "disk", "network"}));
  for (const auto& k : kGuideEndKeys)
    EXPECT_TRUE(std::find(kEndKeys.begin(), kEndKeys.end(), k) != kEndKeys.end()) << k;
}

TEST_F(RecordLog, DefaultKindsAreCommandAndNetwork) {
  REQUIRE_ROOT();
  auto r = record_to(path("events.json"), {}, kPipeline);
  EXPECT_EQ(r.outcome.status, 0);
  EXPECT_EQ(r.log.count("session.disk"), 0u) << r.log.text;
  EXPECT_EQ(r.log.count("session.command"), 5u) << r.log.text;
  json end = r.log.events.back();
  EXPECT_EQ(end["enhanced_recording_kinds"], json::array({"command", "network"}));
  EXPECT_EQ(ip_network(r.log).size(), 0u) << r.log.text;
  EXPECT_EQ(end["recorded_events"], counts(5, 0, unix_network(r.log)));
  EXPECT_EQ(end["lost_events"], counts(0, 0, 0));
}

TEST_F(RecordLog, LoopbackConnectsGiveNetworkEventsByDefault) {
  REQUIRE_ROOT();
  Listener v4(false), v6(true);
  const std::string script = "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(v4.port()) +
                             "; exec 4<>/dev/tcp/::1/" + std::to_string(v6.port());
  auto r = record_to(path("events.json"), {}, {"bash", "-c", script});
  ASSERT_EQ(r.outcome.status, 0) << r.outcome.err;
  json bash = only(r.log, "session.command", "program", "bash");
  EXPECT_EQ(bash["argv"], json({"-c", script}));
  // Each connect, then its result.
  std::vector<json> net, results;
  for (auto& n : ip_network(r.log)) (n["operation"] == 3 ? results : net).push_back(n);
  ASSERT_EQ(net.size(), 2u) << r.log.text;
  ASSERT_EQ(results.size(), 2u) << r.log.text;
  for (auto& n : results) {
    EXPECT_EQ(n["result"], "established");
    EXPECT_EQ(n["return_code"], 0);
    EXPECT_EQ(n["pid"], bash["pid"]);
    EXPECT_EQ(keys_of(n), kNetworkResultKeys);
  }
  EXPECT_EQ(results[0]["dst_port"], v4.port());
  EXPECT_EQ(results[1]["dst_port"], v6.port());

  EXPECT_EQ(net[0]["code"], "T4002I");
  EXPECT_EQ(net[0]["version"], 4);
  EXPECT_EQ(net[0]["src_addr"], "127.0.0.1");
  EXPECT_EQ(net[0]["dst_addr"], "127.0.0.1");
  EXPECT_EQ(net[0]["dst_port"], v4.port());

  EXPECT_EQ(net[1]["code"], "T4002I");
  EXPECT_EQ(net[1]["version"], 6);
  EXPECT_EQ(net[1]["src_addr"], "::1");
  EXPECT_EQ(net[1]["dst_addr"], "::1");
  EXPECT_EQ(net[1]["dst_port"], v6.port());
  for (auto& n : net) {
    EXPECT_EQ(n["operation"], 0) << "connect";
    EXPECT_EQ(n["action"], 0) << "observed";
    EXPECT_EQ(n["program"], "bash");
    EXPECT_EQ(n["pid"], bash["pid"]);
    EXPECT_EQ(n["cgroup_id"], bash["cgroup_id"]);
    EXPECT_EQ(keys_of(n), kNetworkKeys);
  }
  EXPECT_EQ(r.log.events.back()["recorded_events"], counts(1, 0, 4 + unix_network(r.log)));
}

TEST_F(RecordLog, EventsOptionSelectsKindsInAnyOrder) {
  REQUIRE_ROOT();
  Listener v4(false);
  const std::string script = "cat /etc/hostname >/dev/null; exec 3<>/dev/tcp/127.0.0.1/" +
                             std::to_string(v4.port());
  auto command_only = record_to(path("command.json"), {"--events", "command"},
                                {"bash", "-c", script});
  EXPECT_EQ(command_only.outcome.status, 0);
  EXPECT_EQ(command_only.log.count("session.network"), 0u) << command_only.log.text;
  EXPECT_EQ(command_only.log.count("session.disk"), 0u) << command_only.log.text;
  EXPECT_EQ(command_only.log.count("session.command"), 2u) << command_only.log.text;
  EXPECT_EQ(command_only.log.events.back()["enhanced_recording_kinds"],
            json::array({"command"}));
  EXPECT_EQ(command_only.log.events.back()["recorded_events"], counts(2, 0, 0));

  auto disk_network = record_to(path("disk-network.json"), {"--events", "network,disk"},
                                {"bash", "-c", script});
  EXPECT_EQ(disk_network.outcome.status, 0);
  EXPECT_EQ(disk_network.log.count("session.command"), 0u) << disk_network.log.text;
  EXPECT_EQ(ip_network(disk_network.log).size(), 2u)  // the connect and its result
      << disk_network.log.text;
  only(disk_network.log, "session.disk", "path", "/etc/hostname");
  EXPECT_EQ(disk_network.log.events.back()["enhanced_recording_kinds"],
            json::array({"disk", "network"}));
}

TEST_F(RecordLog, OutputFileIsAppendedToNotTruncated) {
  REQUIRE_ROOT();
  const std::string file = path("events.json");
  auto first = record_to(file, {}, {"true"});
  ASSERT_EQ(first.outcome.status, 0);
  auto both = record_to(file, {}, {"sh", "-c", "exit 3"});
  ASSERT_EQ(both.outcome.status, 3);
  ASSERT_EQ(both.log.text.compare(0, first.log.text.size(), first.log.text), 0)
      << "the first run's lines were changed";
  auto starts = both.log.of("session.start");
  auto ends = both.log.of("session.end");
  ASSERT_EQ(starts.size(), 2u);
  ASSERT_EQ(ends.size(), 2u);
  EXPECT_NE(starts[0]["sid"], starts[1]["sid"]);
  EXPECT_EQ(starts[0]["server_id"], starts[1]["server_id"]) << "host_uuid is stable";
  EXPECT_EQ(starts[0]["initial_command"], json::array({"true"}));
  EXPECT_EQ(starts[1]["initial_command"], json::array({"sh", "-c", "exit 3"}));
  // The second session counts its own events from 0 again.
  const size_t second = first.log.events.size();
  EXPECT_EQ(both.log.events[second]["event"], "session.start");
  EXPECT_EQ(both.log.events[second]["ei"], 0);
  EXPECT_EQ(both.log.events.back()["sid"], starts[1]["sid"]);
}

TEST_F(RecordLog, ArgvThatIsNotUtf8KeepsItsExactBytesInBase64) {
  REQUIRE_ROOT();
  const std::string odd = "\xff\xfe" "abc";
  auto r = record_to(path("events.json"), {}, {"printf", "%s", odd});
  EXPECT_EQ(r.outcome.status, 0);
  EXPECT_EQ(r.outcome.out, odd) << "the bytes reach the command unchanged";
  json printf_ = only(r.log, "session.command", "program", "printf");
  EXPECT_EQ(printf_["argv"], json::array({"%s", "\xEF\xBF\xBD\xEF\xBF\xBD" "abc"}))
      << "U+FFFD for each invalid byte";
  EXPECT_EQ(printf_["argv_base64"], json::array({"JXM=", "//5hYmM="}));
  Keys keys = kCommandKeys;
  keys.insert(keys.begin() + 1, "argv_base64");
  EXPECT_EQ(keys_of(printf_), keys);
  json start = r.log.events.front();
  EXPECT_EQ(start["initial_command"],
            json::array({"printf", "%s", "\xEF\xBF\xBD\xEF\xBF\xBD" "abc"}));
  EXPECT_EQ(start["initial_command_base64"], json::array({"cHJpbnRm", "JXM=", "//5hYmM="}));
}

TEST_F(RecordLog, GuideNodeFileLoadsUnchanged) {
  REQUIRE_ROOT();
  // The guide's node file, with only data_dir and root_path made this test's.
  write_file(config(),
             "version: v3\n"
             "teleport:\n"
             "  nodename: graviton-node\n"
             "  auth_token: 0123456789abcdef\n"
             "  auth_server: 127.0.0.1:3025\n"
             "  proxy_server: 127.0.0.1:3080\n"
             "  data_dir: " + data_dir() + "\n"
             "proxy_service:\n"
             "  enabled: false\n"
             "auth_service:\n"
             "  enabled: false\n"
             "ssh_service:\n"
             "  enabled: true\n"
             "  enhanced_recording:\n"
             "    enabled: true            # default false\n"
             "    command_buffer_size: 8   # pages, default 8\n"
             "    disk_buffer_size: 128    # pages, default 128\n"
             "    network_buffer_size: 8   # pages, default 8\n"
             "    cgroup_path: /cgroup2    # where the cgroup v2 hierarchy is mounted\n"
             "    root_path: " + root_path() + "\n");
  auto r = record_to(path("events.json"), {}, {"true"});
  ASSERT_EQ(r.outcome.status, 0) << r.outcome.err;
  ASSERT_EQ(r.log.events.size(), 3u) << r.log.text;
  for (auto& e : r.log.events) {
    EXPECT_EQ(e["server_hostname"], "graviton-node");
    EXPECT_EQ(e["cluster_name"], "graviton-node") << "the cluster is named after the node";
    EXPECT_EQ(e["server_id"], host_uuid());
  }
  json t = only(r.log, "session.command", "program", "true");
  EXPECT_EQ(t["path"], "/usr/bin/true");
  EXPECT_EQ(t["argv"], json::array());
}

}  // namespace
}  // namespace e2e
