// What the SSH node promises, checked through the node itself (the units
// test the parts: these fail when the node stops using them): the rate
// limiter, unknown logins, bad client signatures, force-command and
// source-address, a host key open to others, the environment a client may
// set, `signal` requests, SIGTERM with live sessions, input flow control.
// Waits are for states (a line in the audit log, a file, a full pipe), with
// bounds only against a broken node.
#include <fcntl.h>
#include <libssh/callbacks.h>
#include <sys/ioctl.h>
#include <sys/un.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <sstream>
#include <fstream>

#include "../support/wait.hpp"
#include "node_fixture.hpp"

namespace e2e {
namespace {

using vigil::testing::eventually;

// Waits (bounded) until `ready` holds; false when it never did.
std::vector<nlohmann::ordered_json> auths_with_reason(const Log& log, const std::string& reason) {
  std::vector<nlohmann::ordered_json> out;
  for (const auto& e : log.of("auth"))
    if (e["reason"] == reason) out.push_back(e);
  return out;
}

std::string base64_decode(const std::string& in) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    size_t v = kAlphabet.find(c);
    if (v == std::string::npos) break;  // '=' or the end
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

void put_u32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
}
void put_string(std::string& out, const std::string& s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

// An ssh-agent (the protocol of draft-miller-ssh-agent) that lists one
// certificate and "signs" with 64 zero bytes: a client using it sends a
// signature that cannot verify, which OpenSSH's own agent never would.
class LyingAgent {
 public:
  LyingAgent(const std::string& path, std::string key_blob) : blob_(std::move(key_blob)) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof(a.sun_path), "%s", path.c_str());
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) || listen(fd_, 4))
      ADD_FAILURE() << "agent socket " << path << ": " << strerror(errno);
    thread_ = std::thread([this] {
      for (;;) {
        int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        serve(c);
        close(c);
      }
    });
  }
  ~LyingAgent() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  int signatures() const { return signatures_; }

 private:
  static bool read_all(int fd, void* buf, size_t n) {
    auto* p = static_cast<char*>(buf);
    while (n) {
      ssize_t r = read(fd, p, n);
      if (r <= 0) return false;
      p += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }
  void serve(int c) {
    for (;;) {
      unsigned char len_be[4];
      if (!read_all(c, len_be, 4)) return;
      uint32_t len = (uint32_t(len_be[0]) << 24) | (len_be[1] << 16) | (len_be[2] << 8) | len_be[3];
      if (len == 0 || len > (1u << 20)) return;
      std::string body(len, '\0');
      if (!read_all(c, body.data(), len)) return;
      std::string reply;
      switch (static_cast<unsigned char>(body[0])) {
        case 11:  // REQUEST_IDENTITIES
          reply.push_back(12);
          put_u32(reply, 1);
          put_string(reply, blob_);
          put_string(reply, "lying agent");
          break;
        case 13: {  // SIGN_REQUEST
          ++signatures_;
          std::string sig;
          put_string(sig, "ssh-ed25519");
          put_string(sig, std::string(64, '\0'));
          reply.push_back(14);
          put_string(reply, sig);
          break;
        }
        default: reply.push_back(5);  // FAILURE
      }
      std::string framed;
      put_string(framed, reply);
      if (send(c, framed.data(), framed.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(framed.size()))
        return;
    }
  }

  std::string blob_;
  int fd_ = -1;
  std::atomic<int> signatures_{0};
  std::thread thread_;
};

// Pids of processes whose command line contains `text`.
std::vector<pid_t> pids_running(const std::string& text) {
  std::vector<pid_t> out;
  for (auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmdline.find(text) != std::string::npos && std::stoi(name) != getpid())
      out.push_back(std::stoi(name));
  }
  return out;
}

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

class NodeBehaviour : public SshNodeTest {
 protected:
  // A copy of the user's key whose certificate names `principal` as login.
  void sign_for(const std::string& name, const std::string& principal) {
    sh("cd " + dir_ + " && cp user " + name + " && cp user.pub " + name + ".pub && "
       "ssh-keygen -q -s ca -I " + kUser + " -n " + principal + " -V -5m:+1h " + name + ".pub");
  }
  Outcome ssh_with(const std::string& key, const std::string& command,
                   const std::vector<std::string>& extra = {},
                   const std::string& login = kLogin) const {
    auto argv = ssh(key, key + "-cert.pub", extra);
    argv.insert(argv.end(), {login + "@127.0.0.1", command});
    return run({argv});
  }
};

}  // namespace

// The rate limiter through the node, with OpenSSH's client: ten logins with
// a plain key (which prove no possession of anything the node trusts) are
// refused and audited but never lock out a good certificate from the same
// address (issue 7, item 9; signed failures that do block the source are in
// login_attack_test.cpp).
TEST_F(NodeBehaviour, PlainKeyAttemptsNeverLockOutAGoodCertificate) {
  sh("cd " + dir_ + " && ssh-keygen -q -t ed25519 -N '' -f plain");
  start_node();
  for (int i = 0; i < 10; ++i) {
    auto argv = ssh("plain", "");
    argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1", "true"});
    ASSERT_EQ(run({argv}).status, 255) << "a plain key was accepted";
  }
  Outcome good = run_ssh("echo in");
  EXPECT_EQ(good.status, 0) << good.err;
  EXPECT_EQ(good.out, "in\n");
  Log log = audit_log();
  EXPECT_FALSE(auths_with_reason(log, "no_certificate").empty()) << log.text;
  EXPECT_TRUE(auths_with_reason(log, "rate_limited").empty()) << log.text;
  EXPECT_EQ(log.count("session.start"), 1u);
}

TEST_F(NodeBehaviour, UnknownLoginIsRefusedAndAudited) {
  const std::string nobody_here = "vigil-no-such-login";
  ASSERT_EQ(getpwnam(nobody_here.c_str()), nullptr);
  sign_for("ghost", nobody_here);
  start_node();
  Outcome o = ssh_with("ghost", "id", {}, nobody_here);
  EXPECT_EQ(o.status, 255);
  EXPECT_THAT(o.err, ::testing::HasSubstr("Permission denied"));
  auto refused = auths_with_reason(audit_log(), "unknown_login");
  ASSERT_EQ(refused.size(), 1u) << audit_log().text;
  EXPECT_EQ(refused[0]["login"], nobody_here);
  EXPECT_EQ(refused[0]["user"], kUser);
  EXPECT_EQ(refused[0]["success"], false);
  EXPECT_THAT(refused[0]["error"].get<std::string>(),
              ::testing::HasSubstr("no local account " + nobody_here));
  EXPECT_EQ(audit_log().count("session.start"), 0u);
}

// libssh (0.10) checks the client's signature itself and, when it does not
// verify, drops the request without calling the node or answering the
// client: the node's `bad_client_signature` refusal is never reached and the
// client waits (here until its own 10 s limit). What holds, and is checked:
// the signature is asked for, and nobody logs in with it.
TEST_F(NodeBehaviour, ABadClientSignatureNeverLogsIn) {
  start_node();
  // The genuine certificate, offered through an agent that cannot sign.
  std::string cert_line = read_file(dir_ + "/user-cert.pub");
  std::istringstream fields(cert_line);
  std::string type, b64;
  fields >> type >> b64;
  ASSERT_EQ(type, "ssh-ed25519-cert-v01@openssh.com");
  const std::string sock = dir_ + "/lying-agent.sock";
  LyingAgent agent(sock, base64_decode(b64));
  {
    LibsshClient c(port_, kLogin);
    long limit_s = 10;  // a bound for the client, see above
    ASSERT_EQ(ssh_options_set(c.s, SSH_OPTIONS_TIMEOUT, &limit_s), SSH_OK);
    ASSERT_EQ(ssh_options_set(c.s, SSH_OPTIONS_IDENTITY_AGENT, sock.c_str()), SSH_OK);
    ASSERT_EQ(ssh_connect(c.s), SSH_OK) << ssh_get_error(c.s);
    EXPECT_NE(ssh_userauth_agent(c.s, nullptr), SSH_AUTH_SUCCESS);
    ssh_channel ch = ssh_channel_new(c.s);
    EXPECT_NE(ssh_channel_open_session(ch), SSH_OK) << "a session opened without a login";
    ssh_channel_free(ch);
  }
  EXPECT_GE(agent.signatures(), 1) << "the client never sent a signature";
  Log log = audit_log();
  EXPECT_EQ(log.count("session.start"), 0u) << log.text;
  for (const auto& e : log.of("auth")) EXPECT_EQ(e["success"], false) << e.dump();
  // The same certificate with its real key still logs in.
  EXPECT_EQ(run_ssh("true").status, 0);
}

TEST_F(NodeBehaviour, ForceCommandReplacesWhatTheClientAsks) {
  sign_copy("forced", "-O \"force-command=echo forced: \\$SSH_ORIGINAL_COMMAND\" -V -5m:+1h");
  start_node();
  Outcome o = ssh_with("forced", "id -u");
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "forced: id -u\n");
  Log log = audit_log();
  auto execs = log.of("exec");
  ASSERT_EQ(execs.size(), 1u) << log.text;
  EXPECT_EQ(execs[0]["command"], "echo forced: $SSH_ORIGINAL_COMMAND");
  EXPECT_FALSE(has_command(log, "id", {"-u"})) << "the client's own command ran";
}

TEST_F(NodeBehaviour, SourceAddressIsEnforcedForTheConnectingAddress) {
  sign_copy("elsewhere", "-O source-address=10.9.8.7/32 -V -5m:+1h");
  sign_copy("loopback", "-O source-address=127.0.0.0/8,::1 -V -5m:+1h");
  start_node();
  Outcome refused = ssh_with("elsewhere", "echo ran");
  EXPECT_EQ(refused.status, 255);
  EXPECT_EQ(refused.out, "");
  auto audited = auths_with_reason(audit_log(), "source_address_mismatch");
  ASSERT_EQ(audited.size(), 1u) << audit_log().text;
  EXPECT_EQ(audited[0]["user"], kUser);
  Outcome allowed = ssh_with("loopback", "echo ran");
  EXPECT_EQ(allowed.status, 0) << allowed.err;
  EXPECT_EQ(allowed.out, "ran\n");
}

TEST_F(NodeBehaviour, AHostKeyOpenToTheGroupStopsTheNode) {
  start_node();
  stop_node();
  const std::string key = dir_ + "/data/host_key";
  ASSERT_TRUE(file_exists(key));
  ASSERT_EQ(chmod(key.c_str(), 0640), 0);
  Outcome o = run({{kNode, "start", "-c", dir_ + "/node.yaml"}});
  EXPECT_NE(o.status, 0);
  EXPECT_THAT(o.err, ::testing::HasSubstr(key + ": the host key is open to group or others; "
                                          "chmod 600 it"));
  EXPECT_FALSE(port_open(port_));
  ASSERT_EQ(chmod(key.c_str(), 0600), 0);
  start_node();
  EXPECT_EQ(run_ssh("true").status, 0);
}

TEST_F(NodeBehaviour, OnlyLangAndLcVariablesPassFromTheClient) {
  start_node();
  Outcome o = ssh_with("user", "env", {"-o", "SetEnv=LANG=C.UTF-8 LC_TIME=C VIGIL_EVIL=1 "
                                             "LD_PRELOAD=/tmp/evil.so PATH=/evil HOME=/evil"});
  ASSERT_EQ(o.status, 0) << o.err;
  auto lines = split_lines(o.out);
  auto has = [&](const std::string& l) { return std::find(lines.begin(), lines.end(), l) != lines.end(); };
  EXPECT_TRUE(has("LANG=C.UTF-8")) << o.out;
  EXPECT_TRUE(has("LC_TIME=C")) << o.out;
  EXPECT_THAT(o.out, ::testing::Not(::testing::HasSubstr("VIGIL_EVIL")));
  EXPECT_THAT(o.out, ::testing::Not(::testing::HasSubstr("LD_PRELOAD")));
  EXPECT_THAT(o.out, ::testing::Not(::testing::HasSubstr("/evil")));
  EXPECT_TRUE(has("PATH=/usr/local/bin:/usr/bin:/bin:/usr/games")) << o.out;
  EXPECT_TRUE(has("HOME=" + std::string(getpwnam(kLogin)->pw_dir))) << o.out;
}

namespace {
struct ExitSeen {
  std::string signal;
  bool closed = false;
};
void on_exit_signal(ssh_session, ssh_channel, const char* signal, int, const char*, const char*,
                    void* userdata) {
  static_cast<ExitSeen*>(userdata)->signal = signal ? signal : "";
}
}  // namespace

TEST_F(NodeBehaviour, SignalRequestReachesTheProcess) {
  start_node();
  LibsshClient c(port_, kLogin);
  ASSERT_EQ(ssh_connect(c.s), SSH_OK) << ssh_get_error(c.s);
  ASSERT_TRUE(c.login_with_certificate(dir_ + "/user"));
  ssh_channel ch = ssh_channel_new(c.s);
  ASSERT_NE(ch, nullptr);
  ExitSeen seen;
  ssh_channel_callbacks_struct cb{};
  cb.userdata = &seen;
  cb.channel_exit_signal_function = on_exit_signal;
  ssh_callbacks_init(&cb);
  ASSERT_EQ(ssh_set_channel_callbacks(ch, &cb), SSH_OK);
  ASSERT_EQ(ssh_channel_open_session(ch), SSH_OK) << ssh_get_error(c.s);
  ASSERT_EQ(ssh_channel_request_exec(ch, "sleep 1000"), SSH_OK) << ssh_get_error(c.s);
  ASSERT_TRUE(eventually([&] { return has_command(audit_log(), "sleep", {"1000"}); }))
      << "sleep never started: " << audit_log().text;
  ASSERT_EQ(ssh_channel_request_send_signal(ch, "TERM"), SSH_OK) << ssh_get_error(c.s);
  char buf[256];
  // Reads until the channel ends (EOF): bounded by libssh's own timeout.
  for (int i = 0; i < 1000 && !ssh_channel_is_eof(ch); ++i)
    if (ssh_channel_read_timeout(ch, buf, sizeof buf, 0, 100) < 0) break;
  for (int i = 0; i < 100 && seen.signal.empty() && !ssh_channel_is_closed(ch); ++i)
    ssh_channel_poll_timeout(ch, 100, 0);
  EXPECT_EQ(seen.signal, "TERM") << "the client was not told its command died of SIGTERM";
  ssh_channel_close(ch);
  ssh_channel_free(ch);
  ASSERT_TRUE(eventually([&] { return audit_log().count("session.end") == 1; }));
}

TEST_F(NodeBehaviour, SigtermEndsLiveSessionsAndWritesTheirSessionEnd) {
  start_node();
  std::vector<std::unique_ptr<Process>> clients;
  for (const char* n : {"1001", "1002"}) {
    auto argv = ssh("user", "user-cert.pub");
    argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1", std::string("sleep ") + n});
    clients.push_back(std::make_unique<Process>(Spawn{argv}));
  }
  ASSERT_TRUE(eventually([&] {
    Log log = audit_log();
    return has_command(log, "sleep", {"1001"}) && has_command(log, "sleep", {"1002"});
  })) << audit_log().text;
  EXPECT_EQ(audit_log().count("session.end"), 0u);
  Outcome node = stop_node();  // SIGTERM
  EXPECT_EQ(node.status, 0) << node.err;
  EXPECT_FALSE(node.timed_out);
  for (auto& c : clients) {
    Outcome o = c->wait();
    EXPECT_FALSE(o.timed_out) << "a client outlived the node";
    EXPECT_NE(o.status, 0);
  }
  Log log = audit_log();
  auto ends = log.of("session.end");
  ASSERT_EQ(ends.size(), 2u) << log.text;
  std::set<std::string> sids;
  for (const auto& e : log.of("session.start")) sids.insert(e["sid"].get<std::string>());
  for (const auto& e : ends) EXPECT_EQ(sids.count(e["sid"].get<std::string>()), 1u);
  EXPECT_EQ(cgroups_left(), 0u);
  EXPECT_TRUE(pids_running("sleep 1001").empty() && pids_running("sleep 1002").empty())
      << "what the sessions ran outlived the node";
}

// A session whose process closed its stdout and stderr but runs on: the
// front end saw both pipes end and must stop polling them. Before, each poll
// round returned at once with POLLHUP and read 0 bytes again, a busy loop
// until the monitor said the process exited: 300 such front ends took both
// cores and the engine's reader starved (bench/session_scale.py lost events).
TEST_F(NodeBehaviour, AFrontEndStopsReadingOutputThatHasEnded) {
  start_node();
  const std::string shared = dir_ + "/shared";  // where the login may write
  ASSERT_EQ(mkdir(shared.c_str(), 0777), 0);
  ASSERT_EQ(chmod(shared.c_str(), 0777), 0);
  const std::string go = shared + "/go";
  auto argv = ssh("user", "user-cert.pub");
  argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1",
                           "exec >/dev/null 2>&1; : > " + go + ".closed; "
                           "while [ ! -e " + go + " ]; do sleep 0.05; done"});
  Process client{Spawn{argv}};
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(go + ".closed"); }))
      << audit_log().text;
  auto procs = node_processes();
  ASSERT_EQ(procs.size(), 2u) << "the monitor and one front end";
  const pid_t front_end = procs[1];
  // read() calls the front end made (Linux counts them in /proc/PID/io).
  auto reads = [&] {
    std::string io = read_file("/proc/" + std::to_string(front_end) + "/io");
    size_t at = io.find("syscr: ");
    return at == std::string::npos ? -1L : std::atol(io.c_str() + at + 7);
  };
  const long before = reads();
  ASSERT_GE(before, 0);
  // While the process waits for `go` (it polls a file; no output): a front
  // end that watches only live fds has nothing to read (0 reads; its poll
  // times out every 100 ms), one that watches the ended pipes reads both of
  // them at every round, and its rounds never wait (thousands in 2 s).
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const long during = reads() - before;
  write_file(go, "");
  Outcome o = client.wait();
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_LT(during, 40) << "the front end read its session's ended output " << during
                        << " times in 2 s: it polls pipes that can never give more";
  ASSERT_TRUE(eventually([&] { return audit_log().count("session.end") == 1; }));
}

TEST_F(NodeBehaviour, AProcessThatDoesNotReadStallsTheClientNotTheNodesMemory) {
  start_node();
  LibsshClient c(port_, kLogin);
  ASSERT_EQ(ssh_connect(c.s), SSH_OK) << ssh_get_error(c.s);
  ASSERT_TRUE(c.login_with_certificate(dir_ + "/user"));
  // The monitor and the connection's front end, which holds the client's data.
  auto node_rss = [&] {
    long kib = 0;
    for (pid_t pid : node_processes()) kib += rss_kib(pid);
    return kib;
  };
  ASSERT_EQ(node_processes().size(), 2u) << "the monitor and one front end";
  const long rss_before = node_rss();
  ssh_channel ch = ssh_channel_new(c.s);
  ASSERT_EQ(ssh_channel_open_session(ch), SSH_OK) << ssh_get_error(c.s);
  // stdin is read only once the test makes `go`.
  const std::string go = dir_ + "/go";
  const std::string command = "while [ ! -e " + go + " ]; do sleep 0.05; done; exec wc -c";
  ASSERT_EQ(ssh_channel_request_exec(ch, command.c_str()), SSH_OK) << ssh_get_error(c.s);
  pid_t remote = -1;
  // The shell that waits (its short-lived children share its stdin).
  ASSERT_TRUE(eventually([&] {
    for (pid_t p : pids_running(go))
      if (remote < 0 || p < remote) remote = p;
    return remote > 0;
  }));

  const size_t total = 32u << 20;
  const size_t bound = 12u << 20;  // what the node may hold: libssh's window, a pipe, buffers
  const std::string chunk(64 << 10, 'v');
  ssh_set_blocking(c.s, 0);
  size_t sent = 0;
  // Push until the node stops taking: the remote's stdin pipe is full and
  // the client's window is shut. A node that reads regardless keeps the
  // window open and takes it all.
  auto pipe_full = [&] {
    int fd = open(("/proc/" + std::to_string(remote) + "/fd/0").c_str(), O_RDONLY | O_NONBLOCK);
    if (fd < 0) return false;
    int queued = 0, size = fcntl(fd, F_GETPIPE_SZ);
    ioctl(fd, FIONREAD, &queued);
    close(fd);
    return size > 0 && queued >= size - 4096;
  };
  int shut = 0;
  for (int i = 0; i < 3000 && sent < total && sent <= bound && shut < 20; ++i) {
    int n = ssh_channel_write(ch, chunk.data(), static_cast<uint32_t>(std::min(chunk.size(), total - sent)));
    ASSERT_GE(n, 0) << ssh_get_error(c.s);
    sent += static_cast<size_t>(n);
    if (n > 0) {
      shut = 0;
      continue;
    }
    ssh_channel_poll_timeout(ch, 10, 0);  // takes in window adjustments
    shut = pipe_full() && ssh_channel_window_size(ch) == 0 ? shut + 1 : 0;
  }
  EXPECT_LE(sent, bound) << "the node took " << sent << " bytes for a process that reads nothing";
  EXPECT_GE(shut, 20) << "the client's window never shut";
  const long rss_stalled = node_rss();
  EXPECT_LT(rss_stalled - rss_before, static_cast<long>(bound / 1024))
      << "the node's memory grew by " << rss_stalled - rss_before << " KiB";

  // Once the process reads, everything arrives, exactly once.
  write_file(go, "");
  ssh_set_blocking(c.s, 1);
  while (sent < total) {
    int n = ssh_channel_write(ch, chunk.data(), static_cast<uint32_t>(std::min(chunk.size(), total - sent)));
    ASSERT_GT(n, 0) << ssh_get_error(c.s);
    sent += static_cast<size_t>(n);
  }
  ASSERT_EQ(ssh_channel_send_eof(ch), SSH_OK);
  std::string out;
  char buf[256];
  for (int n; (n = ssh_channel_read_timeout(ch, buf, sizeof buf, 0, 30000)) > 0;) out.append(buf, n);
  EXPECT_EQ(out, std::to_string(total) + "\n");
  ssh_channel_close(ch);
  ssh_channel_free(ch);
}

}  // namespace e2e
