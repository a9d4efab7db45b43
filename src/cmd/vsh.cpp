// vsh: a user's client of a Vigil cluster, as tsh is Teleport's. It logs in
// through the proxy's web API, keeps a short-lived SSH certificate and TLS
// identity under ~/.vsh, and runs OpenSSH's own ssh and scp through the
// proxy with them (the proxy's SSH port is a jump host).
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>

#include "common/version.hpp"
#include "api/client.hpp"
#include "api/server.hpp"
#include "audit/base64.hpp"
#include "ca/key.hpp"
#include "ca/key_file.hpp"
#include "ca/tls_ca.hpp"
#include "client/password.hpp"
#include "client/pem.hpp"
#include "client/profile.hpp"
#include "client/recordings.hpp"
#include "client/ssh_config.hpp"
#include "common/log.hpp"
#include "player/player.hpp"
#include "recording/listing.hpp"
#include "recording/reader.hpp"

namespace vigil::vsh {
namespace {

using nlohmann::json;

constexpr int kFailed = 1;

int fail(const std::string& message) {
  std::fprintf(stderr, "vsh: %s\n", message.c_str());
  return kFailed;
}
int fail(const Error& e) { return fail(e.message); }

std::string base64(std::string_view bytes) {
  std::string out;
  audit::append_base64(out, bytes);
  return out;
}

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string local_time(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string remaining(int64_t seconds) {
  if (seconds <= 0) return "EXPIRED";
  char buf[64];
  std::snprintf(buf, sizeof buf, "valid for %lldh%02lldm", static_cast<long long>(seconds / 3600),
                static_cast<long long>(seconds % 3600 / 60));
  return buf;
}

// How the proxy's certificate is trusted before the cluster's CA is known.
struct Trust {
  bool insecure = false;
  std::string ca_pin;
};

Result<std::unique_ptr<api::Client>> connect_anonymous(const std::string& address,
                                                       const Trust& trust) {
  api::ClientOptions o;
  o.address = address;
  if (trust.insecure) {
    o.insecure = true;
  } else if (!trust.ca_pin.empty()) {
    o.ca_pin = trust.ca_pin;
  } else {
    return Error::of(Errc::invalid_argument,
                     "the proxy's certificate comes from the cluster's own CA, which this "
                     "machine does not know yet: give --ca-pin=sha256:... (vigilctl status "
                     "prints it on the auth host) or --insecure to accept it unchecked");
  }
  return api::Client::connect(std::move(o));
}

// A logged-in user's connection: the cluster CA kept at login, the TLS
// identity as the client certificate.
struct LoggedIn {
  client::ProfileStore store;
  client::Profile profile;
  std::unique_ptr<api::Client> api;
};

Result<LoggedIn> logged_in(bool need_api) {
  auto store = client::ProfileStore::open_default();
  if (!store) return store.error();
  auto p = store->current();
  if (!p) return p.error();
  if (p->valid_until <= now_seconds())
    return Error::of(Errc::unauthenticated,
                     "your certificates for " + p->proxy + " expired at " +
                         local_time(p->valid_until) + ": run 'vsh login --proxy=" + p->proxy +
                         " --user=" + p->user + "' again");
  LoggedIn out{std::move(*store), std::move(*p), nullptr};
  if (!need_api) return out;
  auto paths = out.store.paths(out.profile);
  auto key = ca::load_private_key(paths.tls_key);
  if (!key) return key.error();
  std::string cert_pem;
  {
    // The certificate is 0644: read it as a plain file.
    FILE* f = std::fopen(paths.tls_certificate.c_str(), "re");
    if (!f) return Error::sys("read " + paths.tls_certificate);
    char buf[8192];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && cert_pem.size() < 256 * 1024)
      cert_pem.append(buf, n);
    std::fclose(f);
  }
  auto cert = ca::TlsCertificate::from_pem(cert_pem);
  if (!cert) return cert.error();
  std::string cas_pem;
  {
    FILE* f = std::fopen(paths.tls_cas.c_str(), "re");
    if (!f) return Error::sys("read " + paths.tls_cas);
    char buf[8192];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && cas_pem.size() < 256 * 1024)
      cas_pem.append(buf, n);
    std::fclose(f);
  }
  auto cas = client::split_pem_certificates(cas_pem);
  if (!cas) return cas.error();
  api::ClientOptions o;
  o.address = out.profile.proxy;
  o.trusted = std::move(*cas);
  o.cluster = out.profile.cluster;
  o.key = &*key;
  o.certificate = std::move(*cert);
  auto c = api::Client::connect(std::move(o));
  if (!c) return c.error();
  // The proxy's web API is served with the auth service's identity
  // ("auth": authsvc::kAuthServerRole) or, by a proxy on a host of its own,
  // with the proxy's ("proxy"); a node's certificate cannot pass.
  if (!api::require_server_role(**c, out.profile.proxy, "proxy"))
    if (auto r = api::require_server_role(**c, out.profile.proxy, "auth"); !r) return r.error();
  out.api = std::move(*c);
  return out;
}

struct NodeRow;
Result<std::vector<NodeRow>> refresh_known_hosts(LoggedIn& li);

void print_profile(const client::Profile& p) {
  int64_t left = p.valid_until - now_seconds();
  std::printf("> Profile URL:        https://%s\n", p.proxy.c_str());
  std::printf("  Logged in as:       %s\n", p.user.c_str());
  std::printf("  Cluster:            %s\n", p.cluster.c_str());
  std::printf("  Roles:              %s\n", join(p.roles).c_str());
  std::printf("  Logins:             %s\n", join(p.logins).c_str());
  std::printf("  Enhanced recording: %s\n", join(p.kinds).c_str());
  std::printf("  Valid until:        %s [%s]\n", local_time(p.valid_until).c_str(),
              remaining(left).c_str());
  if (p.insecure)
    std::printf("  WARNING:            the proxy's certificate was accepted unchecked (--insecure)\n");
}

Result<ca::Secret> ask(const std::string& prompt, bool from_stdin, std::string_view what) {
  if (from_stdin) return client::read_secret_line(0, what);
  return client::read_secret_from_terminal(prompt);
}

int login(const std::string& proxy_flag, const std::string& user, const Trust& trust,
          bool password_stdin, const std::string& ttl) {
  auto proxy = client::parse_proxy_flag(proxy_flag);
  if (!proxy) return fail(proxy.error());
  auto api = connect_anonymous(proxy->first, trust);
  if (!api) return fail(api.error());
  auto find = (*api)->call_json("GET", "/v1/webapi/find");
  if (!find) return fail(find.error());
  std::string cluster = find->value("cluster_name", "");
  bool otp = (*find)["auth"].is_object() && (*find)["auth"].value("second_factor", "") == "otp";

  auto password = ask("Enter password for Vigil user " + user + ":\n", password_stdin, "password");
  if (!password) return fail(password.error());
  std::string code;
  if (otp) {
    auto c = ask("Enter your OTP token:\n", password_stdin, "one-time code");
    if (!c) return fail(c.error());
    code = std::string(c->view());
  }
  auto ssh_key = ca::PrivateKey::generate(ca::KeyAlgorithm::ed25519);
  auto tls_key = ca::PrivateKey::generate(ca::KeyAlgorithm::ecdsa_p256);
  if (!ssh_key) return fail(ssh_key.error());
  if (!tls_key) return fail(tls_key.error());
  json body = {{"user", user},
               {"password", std::string(password->view())},
               {"ssh_public_key", ssh_key->ssh_public_key_line(user)},
               {"tls_public_key", base64(tls_key->spki_der())}};
  if (!code.empty()) body["totp_code"] = code;
  if (!ttl.empty()) body["ttl"] = ttl;
  auto reply = (*api)->call_json("POST", "/v1/login", body);
  body["password"] = "";
  if (!reply) return fail(reply.error());

  client::Credentials creds;
  auto ssh_private = ssh_key->to_openssh(user);
  auto tls_private = tls_key->to_pem();
  if (!ssh_private) return fail(ssh_private.error());
  if (!tls_private) return fail(tls_private.error());
  creds.ssh_private_key = std::string(ssh_private->view());
  creds.ssh_public_key = ssh_key->ssh_public_key_line(user);
  creds.ssh_certificate = reply->value("ssh_certificate", "");
  creds.tls_private_key = std::string(tls_private->view());
  creds.tls_certificate = reply->value("tls_certificate", "");
  for (const auto& pem : (*reply)["tls_ca_certificates"]) creds.tls_cas += pem.get<std::string>();
  creds.known_hosts = reply->value("host_ca_known_hosts", "");

  // What the certificate says, read from it (not from the reply's words).
  auto cas = client::split_pem_certificates(creds.tls_cas);
  if (!cas || cas->empty()) return fail("the proxy sent no cluster CA certificate");
  auto cert = ca::TlsCertificate::from_pem(creds.tls_certificate);
  if (!cert) return fail("the proxy sent a TLS certificate that does not read: " + cert.error().message);
  auto identity = ca::verify_tls_peer(cert->get(), *cas, cluster, ca::TlsUsage::client, now_seconds());
  if (!identity) return fail("the certificate the proxy issued does not verify: " + identity.refusal().message);
  if (!trust.insecure && !trust.ca_pin.empty() && ca::ca_pin(cas->front()) != trust.ca_pin &&
      std::none_of(cas->begin(), cas->end(),
                   [&](const ca::TlsCertificate& c) { return ca::ca_pin(c) == trust.ca_pin; }))
    return fail("the cluster's CA does not have the pin given with --ca-pin");

  client::Profile p;
  p.proxy = proxy->first;
  p.proxy_ssh_port = proxy->second.proxy_ssh_port;
  p.user = user;
  p.cluster = cluster;
  for (const auto& l : (*reply)["principals"]) p.logins.push_back(l.get<std::string>());
  p.roles = identity->roles;
  for (const auto& k : (*reply)["enhanced_recording"]) p.kinds.push_back(k.get<std::string>());
  p.valid_until = identity->not_after;
  p.insecure = trust.insecure;
  p.ca_pin = ca::ca_pin(cas->front());

  auto store = client::ProfileStore::open_default();
  if (!store) return fail(store.error());
  if (auto r = store->save(p, creds); !r) return fail(r.error());
  auto where = store->paths(p);
  std::string cfg = client::ssh_config_for_vsh(p, where, client::ssh_target(p));
  if (auto r = ca::write_file_atomic(where.dir + "/ssh_config", cfg, 0644); !r) return fail(r.error());
  // The hosts' keys, through the identity just issued.
  if (auto li = logged_in(true); li) {
    if (auto r = refresh_known_hosts(*li); !r)
      std::fprintf(stderr, "vsh: the nodes' host keys could not be fetched yet: %s\n",
                   r.error().message.c_str());
  }
  print_profile(p);
  return 0;
}

int status() {
  auto li = logged_in(false);
  if (!li) {
    // An expired profile is still shown, with what to do.
    auto store = client::ProfileStore::open_default();
    if (store) {
      if (auto p = store->current()) {
        print_profile(*p);
        return kFailed;
      }
    }
    return fail(li.error());
  }
  print_profile(li->profile);
  return 0;
}

int logout() {
  auto store = client::ProfileStore::open_default();
  if (!store) return fail(store.error());
  auto p = store->remove();
  if (!p) return fail(p.error());
  std::printf("Logged out %s from %s.\n", p->user.c_str(), p->proxy.c_str());
  return 0;
}

struct NodeRow {
  std::string uuid, name, address, labels, host_key;
  bool tunnel = false;
};

// The nodes as GET /v1/nodes answers them (tctl's resource form).
std::vector<NodeRow> node_rows(const json& reply) {
  std::vector<NodeRow> out;
  if (!reply.contains("nodes") || !reply["nodes"].is_array()) return out;
  for (const auto& n : reply["nodes"]) {
    if (!n.is_object()) continue;
    NodeRow r;
    const json meta = n.value("metadata", json::object());
    const json spec = n.value("spec", json::object());
    r.uuid = meta.value("name", "");
    r.name = spec.value("hostname", "");
    r.address = spec.value("addr", "");
    r.tunnel = spec.value("tunnel", false);
    r.host_key = spec.value("host_key", "");
    if (meta.contains("labels") && meta["labels"].is_object())
      for (const auto& [k, v] : meta["labels"].items())
        r.labels += (r.labels.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : "");
    out.push_back(std::move(r));
  }
  return out;
}

// A known_hosts name: "[host]:port" unless the port is 22.
std::string known_name(const std::string& host, uint16_t port) {
  return port == 22 ? host : "[" + host + "]:" + std::to_string(port);
}

// Rewrites the profile's known_hosts from what the cluster says now: the
// proxy's host key and each node's, under every name ssh may be given
// (name, uuid, name.<cluster>) and, for ssh -J, at the node port. Nodes'
// SSH servers present plain host keys (libssh 0.10 has no host
// certificates), so this list, fetched over the TLS connection the login
// trusts, is what StrictHostKeyChecking checks against.
Result<std::vector<NodeRow>> refresh_known_hosts(LoggedIn& li) {
  auto nodes = li.api->call_json("GET", "/v1/nodes");
  if (!nodes) return nodes.error();
  auto rows = node_rows(*nodes);
  std::string text;
  auto proxy = li.api->call_json("GET", "/v1/proxy/host_key");
  auto target = client::ssh_target(li.profile);
  if (proxy && proxy->contains("host_key"))
    text += known_name(target.proxy_host, target.proxy_ssh_port) + " " +
            proxy->value("host_key", "") + "\n";
  for (const auto& r : rows) {
    if (r.host_key.empty()) continue;
    std::string names;
    for (const std::string& n : {r.name, r.uuid, r.name + "." + li.profile.cluster})
      if (!n.empty()) names += (names.empty() ? "" : ",") + known_name(n, target.node_port);
    text += names + " " + r.host_key + "\n";
  }
  auto where = li.store.paths(li.profile);
  if (auto w = ca::write_file_atomic(where.known_hosts, text, 0644); !w) return w.error();
  return rows;
}

int ls() {
  auto li = logged_in(true);
  if (!li) return fail(li.error());
  auto rows = refresh_known_hosts(*li);
  if (!rows) return fail(rows.error());
  std::vector<std::array<std::string, 3>> table = {{"Node Name", "Address", "Labels"}};
  for (const auto& r : *rows) table.push_back({r.name, r.tunnel ? "⟵ Tunnel" : r.address, r.labels});
  std::array<size_t, 3> width{};
  for (const auto& r : table)
    for (size_t i = 0; i < 3; ++i) width[i] = std::max(width[i], r[i].size());
  auto line = [&](const std::array<std::string, 3>& r) {
    std::printf("%-*s %-*s %s\n", static_cast<int>(width[0]), r[0].c_str(),
                static_cast<int>(width[1]), r[1].c_str(), r[2].c_str());
  };
  line(table[0]);
  line({std::string(width[0], '-'), std::string(width[1], '-'), std::string(width[2], '-')});
  for (size_t i = 1; i < table.size(); ++i) line(table[i]);
  return 0;
}

// Runs OpenSSH's `program` with the profile's ssh_config; returns only on failure.
int exec_openssh(const char* program, std::vector<std::string> args) {
  auto li = logged_in(false);
  if (!li) return fail(li.error());
  auto where = li->store.paths(li->profile);
  std::vector<std::string> argv = {program, "-F", where.dir + "/ssh_config"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> c;
  for (auto& a : argv) c.push_back(a.data());
  c.push_back(nullptr);
  execvp(program, c.data());
  return fail(std::string("cannot run ") + program + ": " + std::strerror(errno) +
              " (install openssh-client)");
}

// tty: how many -t were given (as ssh: one asks a terminal when stdin is
// one, two force it); no_tty: -T.
int ssh(const std::string& target, const std::vector<std::string>& command, int tty, bool no_tty) {
  if (tty > 0 && no_tty) return fail("-t asks for a terminal and -T for none: give one of them");
  auto li = logged_in(true);
  if (!li) return fail(li.error());
  if (auto r = refresh_known_hosts(*li); !r) return fail(r.error());
  std::string login, node = target;
  if (auto at = target.rfind('@'); at != std::string::npos) {
    login = target.substr(0, at);
    node = target.substr(at + 1);
  } else {
    const char* me = std::getenv("USER");
    const auto& logins = li->profile.logins;
    if (me && std::find(logins.begin(), logins.end(), me) != logins.end()) login = me;
    else if (!logins.empty()) login = logins.front();
    else return fail("your roles allow no login on any node: ask an admin (vigilctl users add --logins)");
  }
  if (node.empty() || node.front() == '-') return fail("name a node: vsh ssh [LOGIN@]NODE [COMMAND]");
  std::vector<std::string> args;
  if (tty > 0) args.push_back(tty == 1 ? "-t" : "-tt");
  if (no_tty) args.push_back("-T");
  args.insert(args.end(), {"-l", login, "--", node});
  args.insert(args.end(), command.begin(), command.end());
  return exec_openssh("ssh", args);
}

int signup(const std::string& proxy_flag, const std::string& token, const Trust& trust,
           bool password_stdin) {
  auto proxy = client::parse_proxy_flag(proxy_flag);
  if (!proxy) return fail(proxy.error());
  auto api = connect_anonymous(proxy->first, trust);
  if (!api) return fail(api.error());
  auto password = ask("Choose a password (12 characters or more):\n", password_stdin, "password");
  if (!password) return fail(password.error());
  if (!password_stdin) {
    auto again = ask("Type it again:\n", false, "password");
    if (!again) return fail(again.error());
    if (again->view() != password->view()) return fail("the two passwords differ: run vsh signup again");
  }
  auto r = (*api)->call_json("POST", "/v1/signup",
                             json{{"token", token}, {"password", std::string(password->view())}});
  if (!r) return fail(r.error());
  std::printf("The password of %s is set.\n", r->value("user", "").c_str());
  if (r->contains("totp_secret")) {
    std::printf(
        "Add this second factor to your authenticator app (TOTP, 6 digits, 30 s); you will be\n"
        "asked for its code at every login. It is shown only now.\n"
        "  Secret: %s\n  URI:    %s\n",
        r->value("totp_secret", "").c_str(), r->value("totp_uri", "").c_str());
  }
  std::printf("Log in with: vsh login --proxy=%s --user=%s%s\n", proxy_flag.c_str(),
              r->value("user", "").c_str(), trust.insecure ? " --insecure" : "");
  return 0;
}

// The recordings the user may see (their own; an auditor's: all), newest
// first, as `vigil recordings` shows a node's: the same table and JSON
// fields (and the cluster's: server_hostname, end, bytes).
int recordings_ls(const std::string& format) {
  constexpr size_t kPage = 200;
  constexpr size_t kMaxRows = 100'000;  // a table is rendered whole: bounded
  auto li = logged_in(true);
  if (!li) return fail(li.error());
  std::vector<nlohmann::ordered_json> rows;
  std::string after;
  for (;;) {
    auto page = vigil::client::list_recordings(*li->api, after, kPage);
    if (!page) return fail(page.error());
    for (auto& row : page->rows) {
      if (format == "json")
        // ASCII only: what a node wrote (a user name) cannot reach the
        // terminal as a control sequence.
        std::printf("%s\n", row.dump(-1, ' ', true, json::error_handler_t::replace).c_str());
      else if (rows.size() < kMaxRows)
        rows.push_back(std::move(row));
    }
    if (page->next.empty()) break;
    if (page->next == after) return fail("the auth service repeated a page of recordings");
    after = page->next;
  }
  if (format == "json") return 0;
  if (rows.empty())
    std::printf("no recordings you may see in cluster %s\n", li->profile.cluster.c_str());
  else
    std::fputs(vigil::recording::listing_table(rows).c_str(), stdout);
  if (rows.size() == kMaxRows)
    std::fprintf(stderr, "vsh: only the newest %zu recordings shown (--format json lists all)\n",
                 kMaxRows);
  return 0;
}

// A recording of the cluster, shown as `vigil play` shows a node's: its
// bytes are fetched from the auth service a window at a time as the
// player reads them.
int play(const std::string& sid, vigil::player::PlayOptions options) {
  options.program = "vsh play";
  auto li = logged_in(true);
  if (!li) return fail(li.error());
  auto source = vigil::client::open_remote_recording(*li->api, sid);
  if (!source) return fail(source.error());
  auto reader = vigil::recording::RecordingReader::open(std::move(*source));
  if (!reader) return fail(reader.error());
  return vigil::player::play(*reader, "session " + sid, options);
}

int config() {
  auto li = logged_in(false);
  if (!li) return fail(li.error());
  auto where = li->store.paths(li->profile);
  std::string text = client::ssh_config_for_user(li->profile, where, client::ssh_target(li->profile));
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

}  // namespace
}  // namespace vigil::vsh

int main(int argc, char** argv) {
  using namespace vigil::vsh;
  CLI::App app{"vsh: log in to a Vigil cluster and reach its nodes"};
  app.set_version_flag("--version", std::string(vigil::kVersion));
  app.require_subcommand(1);
  std::string proxy, user, ttl, token, target;
  Trust trust;
  bool password_stdin = false, no_tty = false;
  int tty = 0;
  std::vector<std::string> command, scp_args;

  auto add_trust = [&](CLI::App* sub) {
    sub->add_flag("--insecure", trust.insecure,
                  "accept the proxy's certificate unchecked (a cluster's self-signed CA)");
    sub->add_option("--ca-pin", trust.ca_pin, "the cluster CA's pin, sha256:... (vigilctl status)");
  };
  auto* login_cmd = app.add_subcommand("login", "log in and keep short-lived certificates");
  login_cmd->add_option("--proxy", proxy, "the proxy, HOST:3080 or HOST:WEBPORT,SSHPORT")->required();
  login_cmd->add_option("--user", user, "your Vigil user name")->required();
  login_cmd->add_option("--ttl", ttl, "how long the certificates last (capped by your roles)");
  login_cmd->add_flag("--password-stdin", password_stdin,
                      "read the password (then the OTP code) from standard input, one line each");
  add_trust(login_cmd);
  auto* status_cmd = app.add_subcommand("status", "who you are logged in as, until when");
  auto* logout_cmd = app.add_subcommand("logout", "delete the current profile's keys");
  auto* ls_cmd = app.add_subcommand("ls", "the nodes you may reach");
  auto* ssh_cmd = app.add_subcommand("ssh", "run ssh to a node through the proxy");
  ssh_cmd->add_flag("-t", tty,
                    "ask for a terminal; twice (-tt) forces one even when stdin is not a terminal");
  ssh_cmd->add_flag("-T", no_tty, "no terminal");
  ssh_cmd->add_option("TARGET", target, "[LOGIN@]NODE")->required();
  ssh_cmd->add_option("COMMAND", command, "the command to run (default: a shell)");
  ssh_cmd->prefix_command();
  auto* scp_cmd = app.add_subcommand("scp", "copy files to and from nodes (scp's arguments)");
  scp_cmd->add_option("ARGS", scp_args)->required();
  scp_cmd->prefix_command();
  auto* config_cmd = app.add_subcommand("config", "ssh_config lines for plain OpenSSH");
  std::string format = "text", sid;
  vigil::player::PlayOptions play_options;
  auto* recordings_cmd = app.add_subcommand("recordings", "the session recordings you may see");
  recordings_cmd->require_subcommand(1);
  auto* recordings_ls_cmd =
      recordings_cmd->add_subcommand("ls", "list them, newest first (yours; an auditor's: all)");
  recordings_ls_cmd->add_option("--format", format, "text (a table) or json (one object a line)")
      ->check(CLI::IsMember({"text", "json"}));
  auto* play_cmd = app.add_subcommand("play", "show a session's recording");
  play_cmd->add_option("SID", sid, "the session id, as vsh recordings ls lists it")->required();
  play_cmd->add_option("--speed", play_options.speed,
                       "replay speed factor (terminal format), 0.01 to 1000")
      ->check(CLI::Validator([](std::string& text) { return vigil::player::check_speed(text); },
                             "FACTOR", "speed"));
  play_cmd->add_flag("--skip-idle", play_options.skip_idle, "shorten pauses to 1 s (terminal format)");
  play_cmd->add_option("--format", play_options.format,
                       "terminal: replay (keys: space pauses, q quits; plain bytes when stdout is "
                       "not a terminal); json: the audit events; asciicast: asciicast v2 for "
                       "asciinema; text: the output as text with the commands marked")
      ->check(CLI::IsMember({"terminal", "json", "asciicast", "text"}));
  auto* signup_cmd = app.add_subcommand("signup", "set your password with a sign-up token");
  signup_cmd->add_option("--proxy", proxy, "the proxy, HOST:3080")->required();
  signup_cmd->add_option("TOKEN", token, "the sign-up token vigilctl users add printed")->required();
  signup_cmd->add_flag("--password-stdin", password_stdin, "read the password from standard input");
  add_trust(signup_cmd);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kFailed;
  }
  vigil::log::set_level(vigil::log::Level::warn);
  if (login_cmd->parsed()) return login(proxy, user, trust, password_stdin, ttl);
  if (status_cmd->parsed()) return status();
  if (logout_cmd->parsed()) return logout();
  if (ls_cmd->parsed()) return ls();
  if (ssh_cmd->parsed()) return ssh(target, command, tty, no_tty);
  if (scp_cmd->parsed()) {
    auto li = logged_in(true);
    if (!li) return fail(li.error());
    if (auto r = refresh_known_hosts(*li); !r) return fail(r.error());
    return exec_openssh("scp", scp_args);
  }
  if (config_cmd->parsed()) return config();
  if (recordings_ls_cmd->parsed()) return recordings_ls(format);
  if (play_cmd->parsed()) return play(sid, play_options);
  if (signup_cmd->parsed()) return signup(proxy, token, trust, password_stdin);
  return kFailed;
}
