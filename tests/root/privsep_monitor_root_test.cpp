// Root tier: the monitor (src/privsep/monitor.*) driven by a test that
// plays a front end, honest or malicious, over a real socketpair. The
// monitor checks certificates itself, answers each request only in the
// state that allows it, ends a front end that breaks the protocol while
// serving the others, hands back a session's fds with SCM_RIGHTS, writes a
// pty session's recording itself, and ends (with session.end) the sessions
// of a front end that goes away.
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>

#include "../support/memory_log.hpp"
#include "../support/temp_dir.hpp"
#include "../support/wait.hpp"
#include "ca/authority.hpp"
#include "ca/proxy_header.hpp"
#include "privsep/monitor.hpp"
#include "privsep/wire.hpp"
#include "recording/memory_store.hpp"
#include "recording/reader.hpp"
#include "sshcert/keys.hpp"

using namespace vigil;
using namespace vigil::privsep;

namespace {

constexpr const char* kLogin = "vigiltest";
constexpr const char* kUser = "alice@example.com";

std::string run_sh(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  EXPECT_EQ(status, 0) << command << "\n" << out;
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A front end as the test plays it: its end of the socketpair, and the
// monitor serving the other end on a thread.
class FrontEnd {
 public:
  FrontEnd(MonitorContext& ctx, std::string peer_port = "5555") {
    int pair[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    fd_ = Fd(pair[0]);
    Fd monitor_end(pair[1]);
    served_ = std::async(std::launch::async, [&ctx, end = std::move(monitor_end), peer_port,
                                              this]() mutable {
      return serve_front_end(ctx, std::move(end), Peer{"127.0.0.1", "127.0.0.1:" + peer_port},
                             stop_);
    });
  }
  ~FrontEnd() {
    stop_ = true;
    fd_.reset();
    if (served_.valid()) served_.wait();
  }
  void send(const Request& r) { ASSERT_TRUE(send_packet(fd_.get(), encode(r))); }
  void send_raw(std::string_view bytes) { ASSERT_TRUE(send_packet(fd_.get(), bytes)); }
  // The next reply (10 s at most), with its fds.
  std::pair<Reply, std::vector<int>> next() {
    pollfd p{fd_.get(), POLLIN, 0};
    EXPECT_EQ(poll(&p, 1, 10000), 1) << "no reply from the monitor";
    auto packet = recv_packet(fd_.get(), 3);
    EXPECT_TRUE(packet) << (packet ? "" : packet.error().message);
    if (!packet || packet->closed) return {Refused{"closed", ""}, {}};
    auto reply = decode_reply(packet->bytes);
    EXPECT_TRUE(reply) << (reply ? "" : reply.error().message);
    return {reply ? reply.value() : Reply{Refused{"undecodable", ""}}, packet->fds};
  }
  template <class T>
  T expect(std::vector<int>* fds = nullptr) {
    auto [reply, got] = next();
    EXPECT_TRUE(std::holds_alternative<T>(reply))
        << "another reply; refused: "
        << (std::holds_alternative<Refused>(reply) ? std::get<Refused>(reply).reason + ": " +
                                                         std::get<Refused>(reply).message
                                                   : "");
    if (fds) *fds = got;
    else for (int f : got) close(f);
    return std::holds_alternative<T>(reply) ? std::get<T>(reply) : T{};
  }
  // How the monitor ended this front end (it must end by itself).
  Served ended() {
    if (served_.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
      ADD_FAILURE() << "the monitor still serves the front end";
      return {false, "(still served)"};  // the destructor stops it
    }
    return served_.get();
  }
  bool closed_by_monitor() {
    pollfd p{fd_.get(), POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) return false;
    auto packet = recv_packet(fd_.get(), 3);
    return packet && packet->closed;
  }
  void close_socket() { fd_.reset(); }

 private:
  Fd fd_;
  std::atomic<bool> stop_{false};
  std::future<Served> served_;
};

class MonitorRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the monitor launches sessions as their login: run as root";
    if (!getpwnam(kLogin)) run_sh(std::string("useradd -m -s /bin/bash ") + kLogin);
    run_sh("cd " + dir_.path() + " && ssh-keygen -q -t ed25519 -N '' -C ca -f ca && "
           "ssh-keygen -q -t ed25519 -N '' -C other -f other && "
           "ssh-keygen -q -t ed25519 -N '' -C user -f user");
    auto cas = sshcert::TrustedCAs::load({dir_.file("ca.pub")});
    ASSERT_TRUE(cas) << cas.error().message;
    cas_ = std::move(*cas);
    ctx_.reset(new MonitorContext{nullptr, log_, recordings_, cas_, {}, dir_.path(),
                                  KindSet::all()});
    ctx_->identity.cluster_name = "c";
    ctx_->identity.server_hostname = "node";
    ctx_->identity.server_id = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
  }

  // A certificate blob for the user's key, signed by `ca` with ssh-keygen's options.
  std::string cert(const std::string& options, const std::string& ca = "ca") {
    std::string name = "c" + std::to_string(++certs_);
    run_sh("cd " + dir_.path() + " && cp user.pub " + name + ".pub && TZ=UTC0 ssh-keygen -q -s " +
           ca + " -I " + kUser + " " + options + " " + name + ".pub");
    auto line = sshcert::parse_key_line(slurp(dir_.file(name + "-cert.pub")));
    EXPECT_TRUE(line) << line.error().message;
    return line ? line->blob : "";
  }
  std::string good() { return cert(std::string("-n ") + kLogin + " -V -5m:+1h"); }

  void login(FrontEnd& f, const std::string& blob) {
    f.send(Login{blob, kLogin});
    auto ok = f.expect<LoginOk>();
    EXPECT_EQ(ok.user, kUser);
  }

  std::vector<nlohmann::ordered_json> auths(bool success) const {
    std::vector<nlohmann::ordered_json> out;
    for (auto& e : log_.of("auth"))
      if (e.value("success", !success) == success) out.push_back(e);
    return out;
  }

  static std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 10000) != 1) break;
      ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  test::TempDir dir_;
  test::MemoryLog log_;
  std::shared_ptr<recording::MemoryRecordingStorage> storage_ =
      std::make_shared<recording::MemoryRecordingStorage>();
  recording::MemoryRecordingStore recordings_{storage_};
  sshcert::TrustedCAs cas_;
  std::unique_ptr<MonitorContext> ctx_;
  int certs_ = 0;
};

TEST_F(MonitorRoot, ForgedCertificateIsRefusedAndAudited) {
  FrontEnd f(*ctx_);
  f.send(Login{cert(std::string("-n ") + kLogin, "other"), kLogin});
  auto refused = f.expect<Refused>();
  EXPECT_EQ(refused.reason, "untrusted_ca");
  auto events = auths(false);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["reason"], "untrusted_ca");
  // The address is the monitor's, and no user is named by an untrusted key id.
  EXPECT_EQ(events[0]["addr.remote"], "127.0.0.1:5555");
  EXPECT_EQ(events[0].value("user", ""), "");
  // The same front end may still log in with a good certificate.
  login(f, good());
  EXPECT_EQ(auths(true).size(), 1u);
}

TEST_F(MonitorRoot, LoginOutsidePrincipalsAndExpiredAreRefused) {
  FrontEnd f(*ctx_);
  f.send(Login{cert("-n someoneelse -V -5m:+1h"), kLogin});
  EXPECT_EQ(f.expect<Refused>().reason, "principal_mismatch");
  f.send(Login{cert(std::string("-n ") + kLogin + " -V 20200101:20200102"), kLogin});
  EXPECT_EQ(f.expect<Refused>().reason, "expired");
  // A certificate that names root may not open root because the front end asks.
  f.send(Login{good(), "root"});
  EXPECT_EQ(f.expect<Refused>().reason, "principal_mismatch");
  // Audited as today: the first of a reason from a source at once, the
  // second of it counted into a summary, written when the front end ends.
  EXPECT_EQ(auths(false).size(), 2u);
  EXPECT_EQ(auths(true).size(), 0u);
  f.close_socket();
  f.ended();
  auto events = auths(false);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2]["reason"], "principal_mismatch");
  EXPECT_EQ(events[2]["count"], 1);
  EXPECT_EQ(events[2]["login"], "root");
}

// A refusal the front end reports is on the log before the front end hears
// back (and only then tells its client no), with the monitor's address.
TEST_F(MonitorRoot, RefusalsAreOnTheLogBeforeTheyAreAcknowledged) {
  FrontEnd f(*ctx_);
  f.send(AuthRefused{kLogin, "", "method_not_allowed", "password", "password logins are not accepted",
                     Counted::no});
  f.expect<Audited>();
  auto events = auths(false);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["reason"], "method_not_allowed");
  EXPECT_EQ(events[0]["method"], "password");
  EXPECT_EQ(events[0]["addr.remote"], "127.0.0.1:5555");
  EXPECT_EQ(log_.lines()[0].durability, auditlog::Durability::sync);
}

TEST_F(MonitorRoot, RequestsBeforeLoginEndTheFrontEndAndOthersGoOn) {
  FrontEnd honest(*ctx_, "6000");
  login(honest, good());
  FrontEnd bad(*ctx_, "6001");
  bad.send(OpenSession{1, Program::exec, "id", false, "", 80, 24, {}});
  Served s = bad.ended();
  EXPECT_TRUE(s.violation);
  EXPECT_NE(s.why.find("open_session before a login"), std::string::npos) << s.why;
  EXPECT_TRUE(bad.closed_by_monitor());
  // The other front end is served on.
  honest.send(OpenSession{1, Program::exec, "echo still", false, "", 80, 24, {}});
  std::vector<int> fds;
  honest.expect<privsep::Opened>(&fds);
  ASSERT_EQ(fds.size(), 3u);
  EXPECT_EQ(read_all(fds[1]), "still\n");
  EXPECT_EQ(honest.expect<Exited>().wait_status, 0);
  for (int fd : fds) close(fd);
}

TEST_F(MonitorRoot, MalformedMessageEndsTheFrontEnd) {
  FrontEnd f(*ctx_);
  login(f, good());
  f.send_raw(encode(Request{EndSession{1}}) + "trailing");
  Served s = f.ended();
  EXPECT_TRUE(s.violation);
  EXPECT_NE(s.why.find("after its last field"), std::string::npos) << s.why;
}

TEST_F(MonitorRoot, WrongStateAndUnknownChannelsEndTheFrontEnd) {
  {
    FrontEnd f(*ctx_);
    login(f, good());
    f.send(Login{good(), kLogin});  // a second login on one connection
    EXPECT_NE(f.ended().why.find("login after a login"), std::string::npos);
  }
  {
    FrontEnd f(*ctx_);
    login(f, good());
    f.send(Signal{5, "INT"});  // a channel never opened
    EXPECT_NE(f.ended().why.find("never opened"), std::string::npos);
  }
  {
    FrontEnd f(*ctx_);
    login(f, good());
    f.send(AuthRefused{kLogin, "", "expired", "publickey", "after the login"});
    EXPECT_NE(f.ended().why.find("auth_refused after the login"), std::string::npos);
  }
}

TEST_F(MonitorRoot, ExecRunsAsTheLoginWithPipesPassedBack) {
  FrontEnd f(*ctx_);
  login(f, good());
  f.send(OpenSession{1, Program::exec, "id -un; echo oops >&2; cat; exit 3", false, "", 80, 24,
                     {"LANG=C.UTF-8"}});
  std::vector<int> fds;
  auto opened = f.expect<privsep::Opened>(&fds);
  EXPECT_EQ(opened.channel, 1u);
  ASSERT_EQ(fds.size(), 3u);
  ASSERT_EQ(write(fds[0], "typed\n", 6), 6);
  close(fds[0]);
  EXPECT_EQ(read_all(fds[1]), std::string(kLogin) + "\ntyped\n");
  EXPECT_EQ(read_all(fds[2]), "oops\n");
  auto exited = f.expect<Exited>();
  EXPECT_EQ(exited.channel, 1u);
  EXPECT_TRUE(WIFEXITED(exited.wait_status) && WEXITSTATUS(exited.wait_status) == 3);
  auto ends = log_.of("session.end");
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0]["login"], kLogin);
  EXPECT_EQ(ends[0]["user"], kUser);
  EXPECT_EQ(ends[0]["sid"], opened.sid);
  close(fds[1]);
  close(fds[2]);
}

TEST_F(MonitorRoot, PtySessionIsRecordedByTheMonitor) {
  FrontEnd f(*ctx_);
  login(f, good());
  f.send(OpenSession{1, Program::exec, "read line; echo got-$line; stty size", true, "xterm", 100,
                     30, {}});
  std::vector<int> fds;
  auto opened = f.expect<privsep::Opened>(&fds);
  ASSERT_EQ(fds.size(), 1u);  // one stream: the pty master stays with the monitor
  f.send(Resize{1, 90, 20});
  // Requests are served in order: once a later one is answered, the pty
  // has its new size (then the line releases `read` and `stty size` runs).
  f.send(OpenSession{2, Program::exec, "true", false, "", 80, 24, {"PATH=/tmp"}});
  EXPECT_EQ(f.expect<Refused>().reason, "env_not_allowed");
  ASSERT_EQ(write(fds[0], "hello\n", 6), 6);
  std::string out = read_all(fds[0]);  // to EOF: the monitor closes it after the last byte
  EXPECT_NE(out.find("got-hello"), std::string::npos) << out;
  EXPECT_NE(out.find("20 90"), std::string::npos) << out;
  EXPECT_EQ(f.expect<Exited>().wait_status, 0);
  // The recording holds what the front end was sent, and the resize.
  auto reader = recording::RecordingReader::open(recordings_, opened.sid);
  ASSERT_TRUE(reader) << reader.error().message;
  std::string output;
  bool resized = false;
  recording::Record record;
  while (reader->next(record)) {
    if (record.type == recording::RecordType::output) output += record.data;
    if (record.type == recording::RecordType::resize && record.cols == 90 && record.rows == 20)
      resized = true;
  }
  EXPECT_EQ(output, out);
  EXPECT_TRUE(resized);
  close(fds[0]);
}

TEST_F(MonitorRoot, SessionRequestsAreCheckedAgainstTheCertificate) {
  FrontEnd f(*ctx_);
  login(f, cert(std::string("-n ") + kLogin + " -O no-pty -V -5m:+1h"));
  f.send(OpenSession{1, Program::shell, "", true, "xterm", 80, 24, {}});
  EXPECT_EQ(f.expect<Refused>().reason, "pty_not_permitted");
  f.send(OpenSession{2, Program::exec, "true", false, "", 80, 24, {"LD_PRELOAD=/tmp/x.so"}});
  EXPECT_EQ(f.expect<Refused>().reason, "env_not_allowed");
  auto rejected = log_.of("session.rejected");
  ASSERT_EQ(rejected.size(), 2u);
  EXPECT_EQ(rejected[0]["user"], kUser);  // the monitor's own idea of who it is
  EXPECT_EQ(log_.of("session.start").size(), 0u);
  // Channel ids only grow: reusing one is a violation.
  f.send(OpenSession{2, Program::exec, "true", false, "", 80, 24, {}});
  EXPECT_NE(f.ended().why.find("not above"), std::string::npos);
}

TEST_F(MonitorRoot, ForceCommandReplacesTheRequest) {
  FrontEnd f(*ctx_);
  login(f, cert(std::string("-n ") + kLogin + " -O force-command='echo forced' -V -5m:+1h"));
  f.send(OpenSession{1, Program::exec, "echo asked", false, "", 80, 24, {}});
  std::vector<int> fds;
  f.expect<privsep::Opened>(&fds);
  ASSERT_EQ(fds.size(), 3u);
  EXPECT_EQ(read_all(fds[1]), "forced\n");
  f.expect<Exited>();
  for (int fd : fds) close(fd);
}

TEST_F(MonitorRoot, AFrontEndThatDiesEndsItsSessions) {
  FrontEnd f(*ctx_);
  login(f, good());
  // Where the login may write.
  std::string pidfile = "/tmp/vigil-privsep-pid-" + std::to_string(getpid());
  unlink(pidfile.c_str());
  f.send(OpenSession{1, Program::exec, "echo $$ > " + pidfile + "; exec sleep 1000", false, "", 80,
                     24, {}});
  std::vector<int> fds;
  f.expect<privsep::Opened>(&fds);
  for (int fd : fds) close(fd);
  pid_t pid = 0;
  ASSERT_TRUE(vigil::testing::eventually([&] {
    std::ifstream in(pidfile);
    return bool(in >> pid);
  }));
  f.close_socket();  // the front end is gone
  Served s = f.ended();
  EXPECT_FALSE(s.violation) << s.why;
  EXPECT_TRUE(vigil::testing::eventually([&] { return !vigil::testing::running(pid); }))
      << "the session's process outlived its front end";
  auto ends = log_.of("session.end");
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(log_.of("session.start").size(), 1u);
  unlink(pidfile.c_str());
}

// A connection the cluster's proxy carried starts with the proxy's signed
// header (ca/proxy_header.hpp). The monitor, not the front end, decides
// whether to believe it; when it does, the client it names is the source of
// everything after (audit events, the source's rate limit, source-address).
class MonitorProxied : public MonitorRoot {
 protected:
  void SetUp() override {
    MonitorRoot::SetUp();
    const int64_t now = time(nullptr);
    auto tls = ca::CertAuthority::create(ca::CaType::tls, "c", now - 100);
    ASSERT_TRUE(tls);
    tls_.emplace(std::move(*tls));
    for (auto* k : {&proxy_key_, &node_key_}) {
      auto key = ca::PrivateKey::generate(ca::KeyAlgorithm::ecdsa_p256);
      ASSERT_TRUE(key);
      k->emplace(std::move(*key));
    }
    proxy_cert_ = issue("9d7b0c1e-2f3a-4b5c-8d6e-7f8091a2b3c4", {"proxy"}, *proxy_key_);
    node_cert_ = issue("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", {}, *node_key_);
    ctx_->proxy_trust.trusted = tls_->trusted_tls_certificates();
    ctx_->proxy_trust.cluster = "c";
    ctx_->proxy_trust.node_uuid = ctx_->identity.server_id;
  }
  ca::TlsCertificate issue(const std::string& name, std::vector<std::string> roles,
                           const ca::PrivateKey& key) {
    ca::TlsIssueRequest r;
    r.identity.kind = ca::TlsIdentityKind::node;
    r.identity.cluster = "c";
    r.identity.name = name;
    r.identity.node_name = "host";
    r.identity.roles = std::move(roles);
    r.subject_public_key = key.spki_der();
    r.now = time(nullptr);
    r.ttl = 3600;
    auto cert = tls_->issue_tls(r);
    EXPECT_TRUE(cert) << cert.error().message;
    return cert ? *cert : ca::TlsCertificate(nullptr);
  }
  std::string header(const ca::PrivateKey& key, const ca::TlsCertificate& cert,
                     std::string node = "", const std::string& client = "203.0.113.9") {
    auto signer = ca::make_origin_signer(key, cert);
    auto h = signer(client, 51234, node.empty() ? ctx_->identity.server_id : node);
    EXPECT_TRUE(h) << h.error().message;
    return h ? *h : std::string();
  }
  std::optional<ca::CertAuthority> tls_;
  std::optional<ca::PrivateKey> proxy_key_, node_key_;
  ca::TlsCertificate proxy_cert_{nullptr}, node_cert_{nullptr};
};

TEST_F(MonitorProxied, TheProxysClientIsTheSourceOfWhatFollows) {
  FrontEnd f(*ctx_);
  f.send(Proxied{header(*proxy_key_, proxy_cert_)});
  EXPECT_TRUE(f.expect<Allowed>().yes);
  // A refusal after it names the client, not the socket's peer (the proxy).
  f.send(AuthRefused{kLogin, "", "method_not_allowed", "password", "no passwords", Counted::no});
  f.expect<Audited>();
  // A certificate whose source-address is the client's is taken; one for
  // the proxy's address (the socket's peer here) is not.
  f.send(Login{cert(std::string("-n ") + kLogin + " -O source-address=127.0.0.1/32 -V -5m:+1h"),
               kLogin});
  EXPECT_EQ(f.expect<Refused>().reason, "source_address_mismatch");
  login(f, cert(std::string("-n ") + kLogin + " -O source-address=203.0.113.0/24 -V -5m:+1h"));
  auto refusals = auths(false);
  ASSERT_EQ(refusals.size(), 2u);
  EXPECT_EQ(refusals[0]["addr.remote"], "203.0.113.9:51234");
  EXPECT_EQ(refusals[1]["addr.remote"], "203.0.113.9:51234");
  auto ok = auths(true);
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0]["addr.remote"], "203.0.113.9:51234");
}

// Failed logins through the proxy count against the client that made them:
// one client that keeps failing is blocked, while another client behind the
// same proxy, and the proxy's own address, may still try.
TEST_F(MonitorProxied, TheRateLimitCountsTheProxysClientNotTheProxy) {
  for (int round = 0; round < 2; ++round) {
    FrontEnd f(*ctx_, std::to_string(7100 + round));
    f.send(Proxied{header(*proxy_key_, proxy_cert_)});
    EXPECT_TRUE(f.expect<Allowed>().yes);
    for (int i = 0; i < 5; ++i) {
      f.send(AuthRefused{kLogin, "", "bad_client_signature", "publickey", "signature does not verify",
                         Counted::signature});
      f.expect<Audited>();
    }
  }
  FrontEnd blocked(*ctx_, "7102");
  blocked.send(Proxied{header(*proxy_key_, proxy_cert_)});
  EXPECT_TRUE(blocked.expect<Allowed>().yes);
  blocked.send(RateCheck{Counted::signature});
  EXPECT_FALSE(blocked.expect<Allowed>().yes) << "the failing client was not blocked";
  FrontEnd other(*ctx_, "7103");
  other.send(Proxied{header(*proxy_key_, proxy_cert_, "", "198.51.100.20")});
  EXPECT_TRUE(other.expect<Allowed>().yes);
  other.send(RateCheck{Counted::signature});
  EXPECT_TRUE(other.expect<Allowed>().yes) << "another client behind the proxy was blocked too";
  FrontEnd proxy_itself(*ctx_, "7104");
  proxy_itself.send(RateCheck{Counted::signature});
  EXPECT_TRUE(proxy_itself.expect<Allowed>().yes) << "the proxy's own address was blocked";
}

TEST_F(MonitorProxied, AHeaderFromAnotherNodeIsRefusedAndTheConnectionGetsNothingMore) {
  FrontEnd f(*ctx_);
  f.send(Proxied{header(*node_key_, node_cert_)});
  auto no = f.expect<Refused>();
  EXPECT_EQ(no.reason, "proxy_header");
  EXPECT_NE(no.message.find("not the cluster's proxy"), std::string::npos) << no.message;
  // Whatever the front end asks next ends it: a connection whose header
  // was refused is not served as if it had none.
  f.send(RateCheck{Counted::signature});
  Served s = f.ended();
  EXPECT_TRUE(s.violation);
  EXPECT_NE(s.why.find("after its proxy header was refused"), std::string::npos) << s.why;
}

TEST_F(MonitorProxied, AHeaderIsBelievedOnceAndOnlyForThisNode) {
  std::string h = header(*proxy_key_, proxy_cert_);
  {
    FrontEnd first(*ctx_, "7000");
    first.send(Proxied{h});
    EXPECT_TRUE(first.expect<Allowed>().yes);
  }
  FrontEnd again(*ctx_, "7001");
  again.send(Proxied{h});  // copied off the wire
  auto replay = again.expect<Refused>();
  EXPECT_NE(replay.message.find("seen before"), std::string::npos) << replay.message;
  FrontEnd elsewhere(*ctx_, "7002");
  elsewhere.send(Proxied{header(*proxy_key_, proxy_cert_, "0b9a8f7e-1d2c-4b3a-9e8d-7c6b5a4f3e2d")});
  auto other = elsewhere.expect<Refused>();
  EXPECT_NE(other.message.find("made for node"), std::string::npos) << other.message;
}

TEST_F(MonitorProxied, AHeaderComesFirstAndAStandaloneNodeBelievesNone) {
  {
    FrontEnd f(*ctx_);
    f.send(RateCheck{Counted::probe});
    f.expect<Allowed>();
    f.send(Proxied{header(*proxy_key_, proxy_cert_)});
    EXPECT_NE(f.ended().why.find("a proxy header after other requests"), std::string::npos);
  }
  ctx_->proxy_trust.trusted.clear();
  FrontEnd f(*ctx_);
  f.send(Proxied{header(*proxy_key_, proxy_cert_)});
  auto no = f.expect<Refused>();
  EXPECT_NE(no.message.find("in no cluster"), std::string::npos) << no.message;
  EXPECT_TRUE(auths(false).empty());
}

}  // namespace
