// vigilctl: the admin tool of the auth host, as tctl is Teleport's. It
// reads the same config as `vigil start` (-c FILE, default /etc/vigil.yaml)
// and calls the auth service with the local admin identity the service
// wrote into <data_dir>/admin at its start: full rights, no login.
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>

#include "common/version.hpp"
#include "api/client.hpp"
#include "audit/timefmt.hpp"
#include "auditlog/event_text.hpp"
#include "auditlog/timeparse.hpp"
#include "api/router.hpp"
#include "api/server.hpp"
#include "ca/key_file.hpp"
#include "client/admin.hpp"
#include "common/log.hpp"
#include "config/config.hpp"

namespace vigil::ctl {
namespace {

using nlohmann::json;

constexpr int kFailed = 1;

int fail(const std::string& message) {
  std::fprintf(stderr, "vigilctl: %s\n", message.c_str());
  return kFailed;
}

int fail(const Error& e) { return fail(e.message); }

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// "roles" -> "role", "role/NAME" -> ("role", "NAME").
Result<std::pair<std::string, std::string>> resource_ref(const std::string& arg) {
  std::string kind = arg, name;
  if (auto slash = arg.find('/'); slash != std::string::npos) {
    kind = arg.substr(0, slash);
    name = arg.substr(slash + 1);
    if (name.empty())
      return Error::of(Errc::invalid_argument, "'" + arg + "' names no resource: use KIND/NAME");
  }
  for (const char* k : {"role", "user", "token", "node"}) {
    if (kind == k || kind == std::string(k) + "s") return std::make_pair(std::string(k), name);
  }
  return Error::of(Errc::invalid_argument,
                   "unknown resource kind '" + kind + "'; use roles, users, tokens or nodes");
}

struct Global {
  std::string config_file = "/etc/vigil.yaml";
  bool config_given = false;
};

Result<std::unique_ptr<api::Client>> connect(const Global& g) {
  auto target = client::admin_target(g.config_file, g.config_given);
  if (!target) return target.error();
  return client::connect_as_admin(*target);
}

void print_text(const std::string& body) {
  std::fwrite(body.data(), 1, body.size(), stdout);
  if (!body.empty() && body.back() != '\n') std::fputc('\n', stdout);
}

// "25 Sep 18 00:21 UTC" from the RFC 3339 time the API answers.
std::string short_time(const json& t) {
  if (!t.is_string()) return "";
  return client::format_api_time(t.get<std::string>());
}

int status(const Global& g) {
  auto c = connect(g);
  if (!c) return fail(c.error());
  auto st = (*c)->call_json("GET", "/v1/status");
  if (!st) return fail(st.error());
  std::printf("Cluster  %s\nVersion  %s\nCA pin   %s\n",
              st->value("cluster", "").c_str(), st->value("version", "").c_str(),
              st->value("ca_pin", "").c_str());
  return 0;
}

int tokens_add(const Global& g, const std::string& type, const std::string& ttl,
               bool node_command) {
  auto target = client::admin_target(g.config_file, g.config_given);
  if (!target) return fail(target.error());
  auto c = client::connect_as_admin(*target);
  if (!c) return fail(c.error());
  json body = {{"roles", split_list(type)}, {"ttl", ttl}};
  auto t = (*c)->call_json("POST", "/v1/tokens", body);
  if (!t) return fail(t.error());
  auto st = (*c)->call_json("GET", "/v1/status");
  std::string pin = st ? st->value("ca_pin", "") : "";
  std::string token = t->value("token", "");
  std::printf("The invite token: %s\n", token.c_str());
  std::printf("This token will expire at %s.\n\n", short_time((*t)["expires"]).c_str());
  if (node_command) {
    std::printf(
        "Put these lines in the new node's config file (e.g. /etc/vigil.yaml) and run\n"
        "'vigil start -c /etc/vigil.yaml' there:\n\n"
        "version: v3\n"
        "teleport:\n"
        "  auth_token: %s\n"
        "  auth_server: %s\n"
        "  ca_pin: %s\n"
        "auth_service:\n"
        "  enabled: false\n"
        "proxy_service:\n"
        "  enabled: false\n"
        "ssh_service:\n"
        "  enabled: true\n"
        "  enhanced_recording:\n"
        "    enabled: true\n\n"
        "A node with no inbound port open names only the proxy instead of auth_server:\n"
        "  proxy_server: %s\n\n"
        "Keep the token secret: anyone holding it can join the cluster until it expires\n"
        "(vigilctl tokens rm %s revokes it).\n",
        token.c_str(), target->auth_address.c_str(), pin.c_str(),
        target->proxy_address.c_str(), t->value("id", "").c_str());
  }
  return 0;
}

int get_text(const Global& g, const std::string& kind, const std::string& name,
             const std::string& format) {
  auto c = connect(g);
  if (!c) return fail(c.error());
  std::string path = "/v1/resources/" + kind + (name.empty() ? "" : "/" + api::percent_encode(name));
  auto r = (*c)->call("GET", path, {{"format", format}});
  if (!r) return fail(r.error());
  if (r->status / 100 != 2) return fail(api::error_from_response(r->status, r->body));
  print_text(r->body);
  return 0;
}

int remove(const Global& g, const std::string& path, const std::string& what) {
  auto c = connect(g);
  if (!c) return fail(c.error());
  auto r = (*c)->call_json("DELETE", path);
  if (!r) return fail(r.error());
  std::printf("%s has been deleted\n", what.c_str());
  return 0;
}

int users_add(const Global& g, const std::string& name, const std::string& roles,
              const std::string& logins, const std::string& ttl) {
  auto c = connect(g);
  if (!c) return fail(c.error());
  json body = {{"name", name}, {"roles", split_list(roles)}, {"logins", split_list(logins)}};
  if (!ttl.empty()) body["ttl"] = ttl;
  auto r = (*c)->call_json("POST", "/v1/users", body);
  if (!r) return fail(r.error());
  std::printf(
      "User \"%s\" has been created but requires a password. Share this URL with the user to\n"
      "complete user setup, link is valid until %s:\n%s\n\n"
      "Or, with vsh:\n  vsh signup --proxy=%s %s\n\n"
      "NOTE: Make sure %s points at a Vigil proxy which users can access.\n",
      name.c_str(), short_time((*r)["expires"]).c_str(), r->value("url", "").c_str(),
      client::proxy_of_url(r->value("url", "")).c_str(), r->value("token", "").c_str(),
      client::proxy_of_url(r->value("url", "")).c_str());
  return 0;
}

int users_reset(const Global& g, const std::string& name) {
  auto c = connect(g);
  if (!c) return fail(c.error());
  auto r = (*c)->call_json("POST", "/v1/users/" + api::percent_encode(name) + "/reset");
  if (!r) return fail(r.error());
  std::printf(
      "User \"%s\" has been reset: the password and second factor are cleared. Share this URL\n"
      "with the user to set them again, link is valid until %s:\n%s\n\n"
      "Or, with vsh:\n  vsh signup --proxy=%s %s\n",
      name.c_str(), short_time((*r)["expires"]).c_str(), r->value("url", "").c_str(),
      client::proxy_of_url(r->value("url", "")).c_str(), r->value("token", "").c_str());
  return 0;
}

int create(const Global& g, const std::string& file, bool force) {
  std::string text;
  if (file == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), {});
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) return fail("cannot read " + file + ": check the path");
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto c = connect(g);
  if (!c) return fail(c.error());
  auto r = (*c)->call_json("POST", "/v1/resources", json{{"text", text}, {"force", force}});
  if (!r) return fail(file + ": " + r.error().message);
  for (const auto& res : (*r)["resources"]) {
    std::printf("%s \"%s\" has been %s\n", res.value("kind", "").c_str(),
                res.value("name", "").c_str(),
                res.value("replaced", false) ? "updated" : "created");
  }
  return 0;
}

struct EventsArgs {
  std::string from, to, types, sid, user, login, order = "asc", format = "text", after;
  size_t limit = 100;
};

int events(const Global& g, const EventsArgs& a) {
  auto c = connect(g);
  if (!c) return fail(c.error());
  std::map<std::string, std::string> query;
  auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  for (auto [name, value] : {std::pair{"from", a.from}, std::pair{"to", a.to}}) {
    if (value.empty()) continue;
    auto t = auditlog::parse_time_arg(value, now_ns);
    if (!t) return fail(std::string("--") + name + ": " + t.error().message);
    query[name] = audit::format_time(*t);
  }
  for (auto [name, value] : {std::pair{"type", a.types}, std::pair{"sid", a.sid},
                             std::pair{"user", a.user}, std::pair{"login", a.login},
                             std::pair{"after", a.after}})
    if (!value.empty()) query[name] = value;
  query["limit"] = std::to_string(a.limit);
  query["order"] = a.order;
  auto r = (*c)->call("GET", "/v1/events", query);
  if (!r) return fail(r.error());
  if (r->status / 100 != 2) return fail(api::error_from_response(r->status, r->body));
  auto page = json::parse(r->body, nullptr, false);
  if (!page.is_object() || !page.contains("events")) return fail("the auth service's answer does not read");
  for (const auto& e : page["events"]) {
    std::string line = e.dump(-1, ' ', false, json::error_handler_t::replace);
    std::string out;
    if (a.format == "json" || !auditlog::append_event_text(line, out)) out = line + "\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  std::string next = page.value("next", "");
  if (!next.empty())
    std::fprintf(stderr, "vigilctl: more events: add --after %s\n", next.c_str());
  return 0;
}

}  // namespace
}  // namespace vigil::ctl

int main(int argc, char** argv) {
  using namespace vigil::ctl;
  CLI::App app{"vigilctl: administer a Vigil cluster from its auth host"};
  app.set_version_flag("--version", std::string(vigil::kVersion));
  app.require_subcommand(1);
  Global g;
  app.add_option("-c,--config", g.config_file, "the config file of the auth service")
      ->each([&](const std::string&) { g.config_given = true; });

  auto* st = app.add_subcommand("status", "the cluster's name, version and CA pin");

  auto* nodes = app.add_subcommand("nodes", "nodes of the cluster");
  nodes->require_subcommand(1);
  std::string node_ttl = "30m", node_roles = "node";
  auto* nodes_add_cmd = nodes->add_subcommand("add", "a join token for a new node, and its config");
  nodes_add_cmd->add_option("--ttl", node_ttl, "how long the token is valid (1s to 48h)");
  nodes_add_cmd->add_option("--roles", node_roles, "node or proxy");
  auto* nodes_ls_cmd = nodes->add_subcommand("ls", "the nodes that heartbeat");

  auto* tokens = app.add_subcommand("tokens", "join tokens");
  tokens->require_subcommand(1);
  std::string token_type = "node", token_ttl = "30m", token_id;
  auto* tokens_add_cmd = tokens->add_subcommand("add", "a join token");
  tokens_add_cmd->add_option("--type", token_type, "node or proxy (comma-separated)");
  tokens_add_cmd->add_option("--ttl", token_ttl, "how long it is valid (1s to 48h)");
  auto* tokens_ls_cmd = tokens->add_subcommand("ls", "the tokens: Token, Type, Expiry Time");
  auto* tokens_rm_cmd = tokens->add_subcommand("rm", "revoke a token");
  tokens_rm_cmd->add_option("TOKEN", token_id, "the token's id (as tokens ls shows it)")->required();

  auto* users = app.add_subcommand("users", "users of the cluster");
  users->require_subcommand(1);
  std::string user_name, user_roles, user_logins, user_ttl;
  auto* users_add_cmd = users->add_subcommand("add", "a user, and the sign-up link to share");
  users_add_cmd->add_option("NAME", user_name)->required();
  users_add_cmd->add_option("--roles", user_roles, "roles, comma-separated")->required();
  users_add_cmd->add_option("--logins", user_logins, "logins on nodes, comma-separated");
  users_add_cmd->add_option("--ttl", user_ttl, "how long the sign-up link is valid");
  auto* users_ls_cmd = users->add_subcommand("ls", "the users and their roles");
  auto* users_rm_cmd = users->add_subcommand("rm", "delete a user");
  users_rm_cmd->add_option("NAME", user_name)->required();
  auto* users_reset_cmd = users->add_subcommand("reset", "clear a user's password and second factor");
  users_reset_cmd->add_option("NAME", user_name)->required();

  std::string file, format = "yaml", ref;
  bool force = false;
  auto* create_cmd = app.add_subcommand("create", "create roles or users from YAML or JSON");
  create_cmd->add_option("FILE", file, "the file ('-' for standard input)")->required();
  create_cmd->add_flag("-f,--force", force, "replace what exists");
  auto* get_cmd = app.add_subcommand("get", "print roles, users, tokens or nodes");
  get_cmd->add_option("KIND[/NAME]", ref, "roles, users, tokens, nodes, or e.g. role/auditor")
      ->required();
  get_cmd->add_option("--format", format, "yaml, json or text")
      ->check(CLI::IsMember({"yaml", "json", "text"}));
  auto* rm_cmd = app.add_subcommand("rm", "delete a resource: role/NAME, user/NAME, token/ID");
  rm_cmd->add_option("KIND/NAME", ref)->required();

  EventsArgs ev;
  auto* events_cmd = app.add_subcommand("events", "search the cluster's audit log");
  events_cmd->add_option("--from", ev.from, "events at or after T (RFC 3339, a date, -15m, -2h, -7d)");
  events_cmd->add_option("--to", ev.to, "events at or before T");
  events_cmd->add_option("--type", ev.types, "event types, comma-separated (session.command,...)");
  events_cmd->add_option("--sid", ev.sid, "only this session");
  events_cmd->add_option("--user", ev.user, "only this cluster user");
  events_cmd->add_option("--login", ev.login, "only this OS login");
  events_cmd->add_option("--limit", ev.limit, "events per page (1 to 1000)")->check(CLI::Range(1, 1000));
  events_cmd->add_option("--order", ev.order, "asc or desc")->check(CLI::IsMember({"asc", "desc"}));
  events_cmd->add_option("--format", ev.format, "text or json")->check(CLI::IsMember({"text", "json"}));
  events_cmd->add_option("--after", ev.after, "the continuation key of the previous page");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kFailed;
  }
  vigil::log::set_level(vigil::log::Level::warn);

  if (st->parsed()) return status(g);
  if (events_cmd->parsed()) return events(g, ev);
  if (nodes_add_cmd->parsed()) return tokens_add(g, node_roles, node_ttl, true);
  if (nodes_ls_cmd->parsed()) return get_text(g, "node", "", "text");
  if (tokens_add_cmd->parsed()) return tokens_add(g, token_type, token_ttl, false);
  if (tokens_ls_cmd->parsed()) return get_text(g, "token", "", "text");
  if (tokens_rm_cmd->parsed())
    return remove(g, "/v1/tokens/" + vigil::api::percent_encode(token_id),
                  "Token " + token_id);
  if (users_add_cmd->parsed()) return users_add(g, user_name, user_roles, user_logins, user_ttl);
  if (users_ls_cmd->parsed()) return get_text(g, "user", "", "text");
  if (users_rm_cmd->parsed())
    return remove(g, "/v1/users/" + vigil::api::percent_encode(user_name),
                  "User \"" + user_name + "\"");
  if (users_reset_cmd->parsed()) return users_reset(g, user_name);
  if (create_cmd->parsed()) return create(g, file, force);
  if (get_cmd->parsed() || rm_cmd->parsed()) {
    auto r = resource_ref(ref);
    if (!r) return fail(r.error());
    auto [kind, name] = *r;
    if (get_cmd->parsed()) return get_text(g, kind, name, format);
    if (name.empty()) return fail("rm needs KIND/NAME, e.g. role/auditor");
    return remove(g, "/v1/resources/" + kind + "/" + vigil::api::percent_encode(name),
                  kind + " \"" + name + "\"");
  }
  return kFailed;
}
