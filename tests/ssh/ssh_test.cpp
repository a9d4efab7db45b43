// Tier (c) for the SSH node: OpenSSH's own `ssh` client against a node this
// test starts on 127.0.0.1 (free port, temporary data_dir), judged by what
// the client sees and what the audit log holds.
#include "node_fixture.hpp"

namespace e2e {
namespace {

TEST_F(SshNodeTest, ExecRecordsObfuscatedCommandsAsTheLogin) {
  start_node();
  Outcome o = run_ssh("echo bHMgLWxh | base64 --decode | sh");
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_THAT(o.out, ::testing::HasSubstr(".profile"));  // ls -la of vigiltest's home
  Outcome id = run_ssh("id -u");
  ASSERT_EQ(id.status, 0) << id.err;
  EXPECT_EQ(id.out, std::to_string(getpwnam(kLogin)->pw_uid) + "\n");

  Log log = audit_log();
  EXPECT_TRUE(has_command(log, "base64", {"--decode"})) << log.text;
  EXPECT_TRUE(has_command(log, "sh", {})) << log.text;
  EXPECT_TRUE(has_command(log, "ls", {"-la"})) << log.text;
  for (const auto& e : log.events) {
    if (e["event"] == "auth") continue;
    EXPECT_EQ(e["user"], kUser) << e.dump();
    EXPECT_EQ(e["login"], kLogin) << e.dump();
    EXPECT_EQ(e["server_hostname"], "ssh-e2e-node");
    EXPECT_THAT(e["addr.remote"].get<std::string>(), ::testing::StartsWith("127.0.0.1:"));
  }
  auto execs = log.of("exec");
  ASSERT_EQ(execs.size(), 2u);
  EXPECT_EQ(execs[0]["code"], "T3002I");
  EXPECT_EQ(execs[0]["command"], "echo bHMgLWxh | base64 --decode | sh");
  EXPECT_EQ(execs[0]["exit_code"], 0);
  auto ends = log.of("session.end");
  ASSERT_EQ(ends.size(), 2u);
  EXPECT_EQ(ends[0]["enhanced_recording"], true);
  EXPECT_EQ(ends[0]["interactive"], false);
  EXPECT_EQ(ends[0]["participants"], nlohmann::json::array({kUser}));
  EXPECT_EQ(ends[0]["lost_events"]["command"], 0);
  EXPECT_EQ(log.count("session.start"), 2u);
  EXPECT_EQ(run_ssh("exit 7").status, 7);
  EXPECT_EQ(cgroups_left(), 0u);
}

TEST_F(SshNodeTest, RefusalsAreAuditedWithTheirReason) {
  sh("cd " + dir_ + " && ssh-keygen -q -t ed25519 -N '' -f ca2 && "
     "for k in other expired principal; do cp user $k; cp user.pub $k.pub; done && "
     "ssh-keygen -q -s ca2 -I mallory -n vigiltest -V -5m:+1h other.pub && "
     "ssh-keygen -q -s ca -I bob -n vigiltest -V 20200101:20200102 expired.pub && "
     "ssh-keygen -q -s ca -I carol -n someoneelse -V -5m:+1h principal.pub && "
     "ssh-keygen -q -t ed25519 -N '' -f plain");
  start_node();
  struct Case {
    std::string key, reason, user;
  } cases[] = {// A key id no trusted CA vouches for is a claim, never the event's user.
               {"other", "untrusted_ca", ""},
               {"expired", "expired", "bob"},
               {"principal", "principal_mismatch", "carol"},
               {"plain", "no_certificate", ""}};
  for (const auto& c : cases) {
    auto argv = ssh(c.key, c.key == "plain" ? "" : c.key + "-cert.pub");
    argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1", "id"});
    Outcome o = run({argv});
    EXPECT_EQ(o.status, 255) << c.key;
    EXPECT_THAT(o.err, ::testing::HasSubstr("Permission denied")) << c.key;
    bool found = false;
    for (const auto& e : audit_log().of("auth")) {
      if (e["reason"] != c.reason) continue;
      found = true;
      EXPECT_EQ(e["code"], "T3007W");
      EXPECT_EQ(e["success"], false);
      EXPECT_EQ(e["login"], kLogin);
      EXPECT_EQ(e["user"], c.user);
      EXPECT_THAT(e["error"].get<std::string>(), ::testing::StartsWith(c.reason + ": "));
      EXPECT_THAT(e["addr.remote"].get<std::string>(), ::testing::StartsWith("127.0.0.1:"));
    }
    EXPECT_TRUE(found) << c.key << " not audited as " << c.reason;
  }
  for (const auto& e : audit_log().of("auth"))
    if (e["reason"] == "untrusted_ca") {
      EXPECT_THAT(e["error"].get<std::string>(),
                  ::testing::HasSubstr("not signed by a trusted CA, claims key id \"mallory\""));
    }
  EXPECT_EQ(audit_log().count("session.start"), 0u);
}

TEST_F(SshNodeTest, InteractiveShellOnPtyRecordsHiddenCommands) {
  start_node();
  auto argv = ssh("user", "user-cert.pub", {"-tt"});
  argv.push_back(std::string(kLogin) + "@127.0.0.1");
  Spawn spawn{argv};
  // Typed with echo off: nothing of it shows on the terminal.
  spawn.stdin_data = "stty -echo\necho aWQgLXU= | base64 --decode | sh\nexit\n";
  Outcome o = run(spawn);
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_THAT(o.out, ::testing::HasSubstr(std::to_string(getpwnam(kLogin)->pw_uid)));
  Log log = audit_log();
  EXPECT_TRUE(has_command(log, "stty", {"-echo"})) << log.text;
  EXPECT_TRUE(has_command(log, "id", {"-u"})) << log.text;
  auto ends = log.of("session.end");
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0]["interactive"], true);
  EXPECT_EQ(log.count("exec"), 0u);
  EXPECT_EQ(cgroups_left(), 0u);
}

// The node records a pty session's output as it reads it from the pty
// master, the same bytes it sends on the channel. `ssh -tt` puts its own
// terminal in raw mode (no OPOST, no local echo) before the first byte of
// the session arrives, and with LogLevel=ERROR prints nothing of its own
// ("Connection to ... closed." is an INFO message), so what reaches the
// test's terminal is exactly the channel's data: the replay must equal it
// byte for byte. Typing only after each prompt shows keeps the local pty
// from echoing anything while ssh is not yet in raw mode.
TEST_F(SshNodeTest, PtySessionReplaysExactlyWhatTheClientShowed) {
  start_node();
  auto env = base_environment();
  env.push_back("TERM=dumb");  // a plain prompt: no colours, no bracketed paste
  auto argv = ssh("user", "user-cert.pub", {"-tt"});
  argv.push_back(std::string(kLogin) + "@127.0.0.1");
  Terminal term(argv, env);
  ASSERT_TRUE(term.wait_for("$ ")) << term.screen();
  size_t after_prompt = term.size();
  ASSERT_TRUE(term.type("stty -echo\n"));
  ASSERT_TRUE(term.wait_for("stty -echo", after_prompt)) << term.screen();  // still echoed
  ASSERT_TRUE(term.wait_for("$ ", after_prompt)) << term.screen();
  size_t hidden_from = term.size();
  // /bin/echo, not the builtin: a session.command of its own.
  ASSERT_TRUE(term.type("/bin/echo hidden-$((6*7))\n"));
  ASSERT_TRUE(term.wait_for("hidden-42\r\n", hidden_from)) << term.screen();
  size_t after_output = term.size();
  ASSERT_TRUE(term.wait_for("$ ", term.screen().find("hidden-42", hidden_from))) << term.screen();
  ASSERT_TRUE(term.type("exit\n"));
  ASSERT_EQ(term.finish(), 0) << term.screen();
  const std::string& screen = term.screen();
  // Echo off: the typed command never showed, only its output.
  EXPECT_EQ(screen.find("/bin/echo", hidden_from), std::string::npos) << screen;
  EXPECT_EQ(screen.find("exit", after_output), std::string::npos) << screen;

  Log log = audit_log();
  auto ends = log.of("session.end");
  ASSERT_EQ(ends.size(), 1u) << log.text;
  std::string sid = ends[0]["sid"];
  const std::string data = dir_ + "/data";

  // stdout is a pipe: play writes the recorded output bytes as they are.
  Outcome replay = run({{kVigil, "play", "--data-dir", data, sid}});
  ASSERT_EQ(replay.status, 0) << replay.err;
  EXPECT_EQ(replay.out, screen);
  // In order: the first prompt, the echoed stty, the hidden command's
  // output (its own line, after a prompt) and bash's goodbye.
  size_t at = 0;
  for (const char* piece : {"$ ", "stty -echo\r\n", "$ ", "hidden-42\r\n", "$ ", "logout"}) {
    size_t found = replay.out.find(piece, at);
    ASSERT_NE(found, std::string::npos) << "no \"" << piece << "\" after " << at << " in\n"
                                        << replay.out;
    at = found + std::strlen(piece);
  }

  Outcome events = run({{kVigil, "play", "--data-dir", data, "--format", "json", sid}});
  ASSERT_EQ(events.status, 0) << events.err;
  Log recorded = parse_log(events.out);
  std::vector<std::string> typed;  // the commands of the two typed lines, in order
  for (const auto& e : recorded.of("session.command")) {
    EXPECT_EQ(e["sid"], sid);
    if ((e["program"] == "stty" && argv_of(e) == std::vector<std::string>{"-echo"}) ||
        (e["program"] == "echo" && argv_of(e) == std::vector<std::string>{"hidden-42"}))
      typed.push_back(e["program"].get<std::string>() + " " + argv_of(e)[0]);
  }
  EXPECT_THAT(typed, ::testing::ElementsAre("stty -echo", "echo hidden-42")) << events.out;
  auto recorded_ends = recorded.of("session.end");
  ASSERT_EQ(recorded_ends.size(), 1u) << events.out;
  EXPECT_EQ(recorded_ends[0]["sid"], sid);
  EXPECT_EQ(recorded_ends[0]["interactive"], true);
  EXPECT_EQ(recorded_ends[0]["enhanced_recording"], true);
  EXPECT_EQ(log.count("exec"), 0u);  // a shell, not an exec request
  EXPECT_EQ(cgroups_left(), 0u);
}

TEST_F(SshNodeTest, FiftyConcurrentSessions) {
  constexpr int kSessions = 50;
  start_node();
  std::vector<std::unique_ptr<Process>> clients;
  for (int i = 0; i < kSessions; ++i) {
    auto argv = ssh("user", "user-cert.pub");
    // /bin/echo, not the shell's builtin: every session then has a command event.
    argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1", "/bin/echo n" + std::to_string(i)});
    clients.push_back(std::make_unique<Process>(Spawn{argv}));
  }
  for (int i = 0; i < kSessions; ++i) {
    Outcome o = clients[i]->wait(90000);
    EXPECT_EQ(o.status, 0) << i << ": " << o.err;
    EXPECT_EQ(o.out, "n" + std::to_string(i) + "\n");
  }
  Log log = audit_log();
  auto starts = log.of("session.start");
  auto ends = log.of("session.end");
  EXPECT_EQ(starts.size(), size_t{kSessions});
  EXPECT_EQ(ends.size(), size_t{kSessions});
  std::set<std::string> ended;
  for (const auto& e : ends) {
    ended.insert(e["sid"].get<std::string>());
    for (const char* kind : {"command", "disk", "network"}) EXPECT_EQ(e["lost_events"][kind], 0);
  }
  for (const auto& s : starts) EXPECT_TRUE(ended.count(s["sid"].get<std::string>())) << s.dump();
  for (int i = 0; i < kSessions; ++i)
    EXPECT_TRUE(has_command(log, "echo", {"n" + std::to_string(i)})) << i;
  EXPECT_EQ(log.count("exec"), size_t{kSessions});
  EXPECT_EQ(cgroups_left(), 0u);
}

TEST_F(SshNodeTest, ControlMasterRunsSeveralChannelsOnOneConnection) {
  start_node();
  std::string sock = dir_ + "/cm.sock";
  auto master = ssh("user", "user-cert.pub",
                    {"-o", "ControlMaster=yes", "-o", "ControlPath=" + sock, "-N", "-f"});
  master.push_back(std::string(kLogin) + "@127.0.0.1");
  ASSERT_EQ(run({master}).status, 0);
  for (int i = 0; i < 3; ++i) {
    auto argv = ssh("user", "user-cert.pub", {"-o", "ControlPath=" + sock});
    argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1", "echo c" + std::to_string(i)});
    Outcome o = run({argv});
    EXPECT_EQ(o.out, "c" + std::to_string(i) + "\n") << o.err;
  }
  auto exit_argv = ssh("user", "user-cert.pub", {"-o", "ControlPath=" + sock, "-O", "exit"});
  exit_argv.push_back(std::string(kLogin) + "@127.0.0.1");
  (void)run({exit_argv});
  auto addrs = audit_log().of("session.start");
  ASSERT_EQ(addrs.size(), 3u);
  EXPECT_EQ(addrs[0]["addr.remote"], addrs[2]["addr.remote"]);  // one connection
}

TEST_F(SshNodeTest, DroppedConnectionEndsTheSession) {
  start_node();
  auto argv = ssh("user", "user-cert.pub");
  argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1", "sleep 100"});
  Process client{Spawn{argv}};
  for (int i = 0; i < 100 && !has_command(audit_log(), "sleep", {"100"}); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  kill(client.pid(), SIGKILL);
  (void)client.wait();
  for (int i = 0; i < 100 && audit_log().count("session.end") == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(audit_log().count("session.end"), 1u);
  EXPECT_EQ(cgroups_left(), 0u);
}

TEST_F(SshNodeTest, StalledAndGarbageClientsDoNotHoldOthersUp) {
  start_node();
  auto connect_raw = [&] {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    return fd;
  };
  int stalled = connect_raw();  // says nothing at all
  int garbage = connect_raw();
  (void)!write(garbage, "GET / HTTP/1.0\r\n\r\n\x01\x02\x03", 21);
  Outcome o = run_ssh("echo still-served");
  EXPECT_EQ(o.out, "still-served\n") << o.err;
  close(stalled);
  close(garbage);
}

// scp of OpenSSH 9.2 speaks SFTP: the sftp subsystem runs sftp-server as
// the login, inside a recorded session.
TEST_F(SshNodeTest, ScpUploadArrivesOwnedByTheLoginAndIsRecorded) {
  sign_copy("diskrec", "-V -5m:+1h -O extension:vigil-recording@vigil.dev=command,disk");
  sh("head -c 1048577 /dev/urandom > " + dir_ + "/upload.bin");
  std::string name = "vigil-scp-" + std::to_string(getpid()) + ".bin";
  std::string target = std::string(getpwnam(kLogin)->pw_dir) + "/" + name;
  start_node();
  auto argv = client("/usr/bin/scp", "-P", "diskrec", "diskrec-cert.pub");
  argv.insert(argv.end(), {dir_ + "/upload.bin", std::string(kLogin) + "@127.0.0.1:" + name});
  Outcome o = run({argv});
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(read_file(target), read_file(dir_ + "/upload.bin"));
  struct stat st{};
  ASSERT_EQ(stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, getpwnam(kLogin)->pw_uid);
  std::filesystem::remove(target);

  Log log = audit_log();
  EXPECT_EQ(log.count("session.start"), 1u);
  EXPECT_EQ(log.count("session.end"), 1u);
  EXPECT_TRUE(has_command(log, "sftp-server", {})) << log.text;
  auto execs = log.of("exec");
  ASSERT_EQ(execs.size(), 1u);
  EXPECT_EQ(execs[0]["command"], "/usr/lib/openssh/sftp-server");
  EXPECT_EQ(execs[0]["exit_code"], 0);
  bool opened = false;
  for (const auto& e : log.of("session.disk"))
    if (e["path"].get<std::string>().find(name) != std::string::npos) opened = true;
  EXPECT_TRUE(opened) << "no session.disk for " << name << "\n" << log.text;
  EXPECT_EQ(cgroups_left(), 0u);
}

TEST_F(SshNodeTest, SftpBatchListsTheHomeAndIsRecorded) {
  write_file(dir_ + "/batch", "pwd\nls -la\n");
  start_node();
  auto argv = client("/usr/bin/sftp", "-P", "user", "user-cert.pub", {"-b", dir_ + "/batch"});
  argv.push_back(std::string(kLogin) + "@127.0.0.1");
  Outcome o = run({argv});
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_THAT(o.out, ::testing::HasSubstr(getpwnam(kLogin)->pw_dir));
  EXPECT_THAT(o.out, ::testing::HasSubstr(".profile"));
  Log log = audit_log();
  EXPECT_EQ(log.count("session.start"), 1u);
  EXPECT_EQ(log.count("session.end"), 1u);
  EXPECT_TRUE(has_command(log, "sftp-server", {})) << log.text;
  EXPECT_EQ(cgroups_left(), 0u);
}

// libssh's client: for what OpenSSH's client does not do (below).

// OpenSSH's client gives up when a pty it was told to get (-t) is refused,
// so the session that goes on without one is shown with libssh's client,
// which asks for a pty and goes on either way (as `ssh` without -t would).
TEST_F(SshNodeTest, NoPtyWithoutPermitPty) {
  sign_copy("nopty", "-V -5m:+1h -O no-pty");
  start_node();
  auto argv = ssh("nopty", "nopty-cert.pub", {"-tt"});
  argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1", "tty"});
  Outcome o = run({argv});
  EXPECT_NE(o.status, 0);
  EXPECT_THAT(o.err, ::testing::HasSubstr("your certificate does not permit a pty (permit-pty)"));
  EXPECT_THAT(o.err, ::testing::HasSubstr("PTY allocation request failed"));

  LibsshClient c(port_, kLogin);
  ASSERT_EQ(ssh_connect(c.s), SSH_OK) << ssh_get_error(c.s);
  ASSERT_TRUE(c.login_with_certificate(dir_ + "/nopty")) << ssh_get_error(c.s);
  ssh_channel ch = ssh_channel_new(c.s);
  ASSERT_EQ(ssh_channel_open_session(ch), SSH_OK);
  EXPECT_NE(ssh_channel_request_pty(ch), SSH_OK);
  ASSERT_EQ(ssh_channel_request_exec(ch, "tty; echo still-ran"), SSH_OK);
  std::string out;
  char buf[256];
  for (int n; (n = ssh_channel_read(ch, buf, sizeof(buf), 0)) > 0;) out.append(buf, n);
  EXPECT_EQ(out, "not a tty\nstill-ran\n");
  ssh_channel_free(ch);

  Log log = audit_log();
  bool found = false;
  for (const auto& e : log.of("session.end")) {
    EXPECT_EQ(e["interactive"], false);
    found = true;
  }
  EXPECT_TRUE(found) << log.text;
  EXPECT_TRUE(has_command(log, "tty", {})) << log.text;
}

TEST_F(SshNodeTest, ConnectionEndsWhenTheCertificateExpires) {
  sign_copy("short", "-V -5m:+4s");
  start_node();
  auto argv = ssh("short", "short-cert.pub");
  // A command that never ends on its own: only the node ending the
  // connection at the certificate's expiry ends it (the run's limit is a
  // bound on a broken node, not the measure).
  argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1", "sleep 1000"});
  Outcome o = run({argv}, 60000);
  EXPECT_FALSE(o.timed_out) << "the session outlived its certificate";
  EXPECT_EQ(o.status, 255) << "the connection was not ended by the node: " << o.err;
  EXPECT_THAT(o.err, ::testing::HasSubstr("certificate has expired"));
  Log log = audit_log();
  EXPECT_TRUE(has_command(log, "sleep", {"1000"})) << log.text;
  EXPECT_EQ(log.count("session.end"), 1u);
  EXPECT_EQ(cgroups_left(), 0u);
}

// OpenSSH's client never sends a password to a server that offers only
// publickey, so the attempts themselves come from libssh's client, which
// sends whatever it is asked to.
TEST_F(SshNodeTest, PasswordAndKeyboardInteractiveAreRefusedAndAudited) {
  start_node();
  auto openssh = ssh("user", "", {"-o", "PreferredAuthentications=password,keyboard-interactive"});
  openssh.insert(openssh.end(), {std::string(kLogin) + "@127.0.0.1", "id"});
  Outcome o = run({openssh});
  EXPECT_EQ(o.status, 255);
  EXPECT_THAT(o.err, ::testing::HasSubstr("Permission denied (publickey)"));

  {
    LibsshClient c(port_, kLogin);
    ASSERT_EQ(ssh_connect(c.s), SSH_OK) << ssh_get_error(c.s);
    EXPECT_EQ(ssh_userauth_password(c.s, nullptr, "hunter2"), SSH_AUTH_DENIED);
    EXPECT_EQ(ssh_userauth_kbdint(c.s, nullptr, nullptr), SSH_AUTH_DENIED);
  }

  auto auths = audit_log().of("auth");
  ASSERT_EQ(auths.size(), 2u) << audit_log().text;
  for (const auto& e : auths) {
    EXPECT_EQ(e["reason"], "method_not_allowed");
    EXPECT_EQ(e["success"], false);
    EXPECT_EQ(e["login"], kLogin);
  }
  EXPECT_THAT(auths[0]["error"].get<std::string>(), ::testing::HasSubstr("password"));
  EXPECT_THAT(auths[1]["error"].get<std::string>(), ::testing::HasSubstr("keyboard-interactive"));
  EXPECT_EQ(audit_log().count("session.start"), 0u);
}

// sshd's MaxSessions, as the node applies it: one connection holds at most
// 10 session channels at a time. A client that asks for hundreds gets 10;
// every other open fails (SSH_MSG_CHANNEL_OPEN_FAILURE, which libssh's
// client reports as "Channel opening failure"), while the connection, the
// channels it has and another client's connection go on working. Refused
// opens start nothing: no session, no cgroup.
TEST_F(SshNodeTest, ChannelsBeyondThePerConnectionCapAreRefused) {
  constexpr int kAsked = 300, kCap = 10;
  start_node();
  LibsshClient c(port_, kLogin);
  ASSERT_EQ(ssh_connect(c.s), SSH_OK) << ssh_get_error(c.s);
  ASSERT_TRUE(c.login_with_certificate(dir_ + "/user")) << ssh_get_error(c.s);

  std::vector<ssh_channel> open;
  int refused = 0;
  std::string refusal;
  for (int i = 0; i < kAsked; ++i) {
    ssh_channel ch = ssh_channel_new(c.s);
    ASSERT_NE(ch, nullptr);
    if (ssh_channel_open_session(ch) == SSH_OK) {
      open.push_back(ch);
      continue;
    }
    ++refused;
    if (refusal.empty()) refusal = ssh_get_error(c.s);
    ssh_channel_free(ch);
  }
  ASSERT_EQ(open.size(), size_t{kCap});
  EXPECT_EQ(refused, kAsked - kCap);
  // libssh's wording; (1) is SSH_OPEN_ADMINISTRATIVELY_PROHIBITED, as sshd
  // answers beyond MaxSessions.
  EXPECT_THAT(refusal, ::testing::HasSubstr("Channel opening failure")) << refusal;
  EXPECT_THAT(refusal, ::testing::HasSubstr("error (1)")) << refusal;
  ASSERT_TRUE(ssh_is_connected(c.s));

  // The channels it got each run a process, all alive at once...
  for (ssh_channel ch : open) ASSERT_EQ(ssh_channel_request_exec(ch, "cat"), SSH_OK) << ssh_get_error(c.s);
  // ...while another client is served as usual.
  Outcome other = run_ssh("echo ok");
  EXPECT_EQ(other.status, 0) << other.err;
  EXPECT_EQ(other.out, "ok\n");
  for (int i = 0; i < kCap; ++i) {
    std::string line = "line " + std::to_string(i) + "\n";
    ASSERT_EQ(ssh_channel_write(open[i], line.data(), line.size()), static_cast<int>(line.size()));
    ASSERT_EQ(ssh_channel_send_eof(open[i]), SSH_OK);
  }
  for (int i = 0; i < kCap; ++i) {
    std::string out;
    char buf[256];
    for (int n; (n = ssh_channel_read_timeout(open[i], buf, sizeof buf, 0, 15000)) > 0;)
      out.append(buf, static_cast<size_t>(n));
    EXPECT_EQ(out, "line " + std::to_string(i) + "\n");
    EXPECT_EQ(ssh_channel_get_exit_status(open[i]), 0);
    ssh_channel_close(open[i]);
    ssh_channel_free(open[i]);
  }

  // The cap counts live channels: with those ended, a new one is accepted.
  ssh_channel again = ssh_channel_new(c.s);
  ASSERT_EQ(ssh_channel_open_session(again), SSH_OK) << ssh_get_error(c.s);
  ASSERT_EQ(ssh_channel_request_exec(again, "echo again"), SSH_OK);
  std::string out;
  char buf[256];
  for (int n; (n = ssh_channel_read_timeout(again, buf, sizeof buf, 0, 15000)) > 0;)
    out.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(out, "again\n");
  ssh_channel_close(again);
  ssh_channel_free(again);
  ssh_disconnect(c.s);

  Log log = audit_log();
  auto starts = log.of("session.start");
  auto ends = log.of("session.end");
  EXPECT_EQ(starts.size(), size_t{kCap + 2}) << log.text;  // the cats, "again", "echo ok"
  EXPECT_EQ(ends.size(), starts.size());
  std::set<std::string> ended;
  for (const auto& e : ends) ended.insert(e["sid"].get<std::string>());
  for (const auto& s : starts) EXPECT_TRUE(ended.count(s["sid"].get<std::string>())) << s.dump();
  EXPECT_EQ(log.count("exec"), size_t{kCap + 2});
  EXPECT_EQ(cgroups_left(), 0u);

  Outcome node = stop_node();
  EXPECT_THAT(node.err, ::testing::HasSubstr("channel refused: already 10 sessions on this connection"));
}

TEST_F(SshNodeTest, ForwardingIsRefusedAndTheSessionStillWorks) {
  start_node();
  auto with = [&](std::vector<std::string> options, const std::string& command) {
    auto argv = ssh("user", "user-cert.pub", options);
    argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1", command});
    return argv;
  };
  // -R: the server says no; the client goes on unless told otherwise.
  Outcome remote_strict = run({with({"-R", "0:127.0.0.1:9", "-o", "ExitOnForwardFailure=yes"}, "true")});
  EXPECT_EQ(remote_strict.status, 255) << remote_strict.err;
  Outcome remote = run({with({"-R", "0:127.0.0.1:9"}, "echo alive-R")});
  EXPECT_EQ(remote.status, 0) << remote.err;
  EXPECT_EQ(remote.out, "alive-R\n");
  // -A: the client asks only when it has an agent; no socket appears.
  std::string agent_sock = dir_ + "/agent.sock";
  Process agent_proc{Spawn{{"/usr/bin/ssh-agent", "-D", "-a", agent_sock}}};
  for (int i = 0; i < 100 && !file_exists(agent_sock); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // (Its own argv: with IdentityAgent=none the client never asks.)
  Spawn agent_client{{"/usr/bin/ssh", "-A", "-p", std::to_string(port_), "-i", dir_ + "/user",
                      "-o", "CertificateFile=" + dir_ + "/user-cert.pub", "-o", "IdentitiesOnly=yes",
                      "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                      "-o", "UserKnownHostsFile=/dev/null", std::string(kLogin) + "@127.0.0.1",
                      "echo ${SSH_AUTH_SOCK:-no-agent}"}};
  agent_client.env.push_back("SSH_AUTH_SOCK=" + agent_sock);
  Outcome agent = run(agent_client);
  kill(agent_proc.pid(), SIGTERM);
  (void)agent_proc.wait();
  EXPECT_EQ(agent.status, 0) << agent.err;
  EXPECT_EQ(agent.out, "no-agent\n");
  // -L: the client listens, but the node refuses the channel it opens for
  // each connection, which the client then closes.
  // The session goes on until the test has tried the forward (a file it
  // makes), not for a time window.
  uint16_t local = free_port();
  const std::string tried = dir_ + "/forward-tried";
  Process forwarding{Spawn{with({"-L", std::to_string(local) + ":127.0.0.1:" + std::to_string(port_)},
                                "while [ ! -e " + tried + " ]; do sleep 0.05; done; echo alive-L")}};
  for (int i = 0; i < 100 && !port_open(local); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(local);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[64];
  EXPECT_EQ(read(fd, buf, sizeof(buf)), 0) << "the forwarded connection reached the node";
  close(fd);
  write_file(tried, "");
  Outcome l = forwarding.wait();
  EXPECT_EQ(l.status, 0) << l.err;
  EXPECT_EQ(l.out, "alive-L\n");

  Outcome node = stop_node();
  EXPECT_THAT(node.err, ::testing::HasSubstr("remote port forwarding (-R) is not allowed"));
  EXPECT_THAT(node.err, ::testing::HasSubstr("port forwarding (-L, -D) is not allowed"));
  EXPECT_THAT(node.err, ::testing::HasSubstr("agent forwarding"));
}

TEST_F(SshNodeTest, RefusesToStartWithoutSshServiceOrCA) {
  write_file(dir_ + "/off.yaml", "vigil:\n  data_dir: " + dir_ + "/data\nssh_service:\n  enabled: false\n");
  Outcome off = run({{kNode, "start", "-c", dir_ + "/off.yaml"}});
  EXPECT_EQ(off.status, 125);
  EXPECT_THAT(off.err, ::testing::HasSubstr("ssh_service.enabled"));
  write_file(dir_ + "/noca.yaml", "vigil:\n  data_dir: " + dir_ + "/data\nssh_service:\n  enabled: true\n");
  Outcome noca = run({{kNode, "start", "-c", dir_ + "/noca.yaml"}});
  EXPECT_EQ(noca.status, 125);
  EXPECT_THAT(noca.err, ::testing::HasSubstr("trusted_user_ca_keys"));
}

TEST_F(SshNodeTest, HostKeyIsMadeOnceWithMode0600) {
  start_node();
  stop_node();
  struct stat st{};
  ASSERT_EQ(stat((dir_ + "/data/host_key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string first = read_file(dir_ + "/data/host_key");
  start_node();
  EXPECT_EQ(read_file(dir_ + "/data/host_key"), first);
}

}  // namespace
}  // namespace e2e
