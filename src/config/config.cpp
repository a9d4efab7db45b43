#include "config/config.hpp"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cassert>
#include <climits>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "config/values.hpp"
#include "config/yaml_reader.hpp"

namespace vigil::config {

namespace {

using yaml::child_path;
using yaml::comma_list;
using yaml::Field;
using yaml::FieldReader;
using yaml::line_of;
using yaml::Place;
using yaml::Reader;

std::string describe(const YAML::Node& node) { return yaml::describe(node); }

Result<void> pages(const Reader& r, const YAML::Node& node, const Place& at, uint32_t& out) {
  return r.whole_number(node, at, "pages", kMinBufferPages, kMaxBufferPages, out);
}

// The schema: which fields each section has and what each accepts.

bool is_absolute(std::string_view path) { return path.starts_with('/'); }

bool is_leftover_policy(std::string_view v) { return v == "record" || v == "kill"; }

// Joined to cgroup_path, so it must stay inside it and not be the whole
// hierarchy, whose other cgroups are not this node's to create or remove.
bool is_session_root(std::string_view path) { return is_clean_absolute_path(path) && path != "/"; }

// "sha256:" and 64 hex digits, as `vigilctl status` prints the CA pin.
bool is_ca_pin(std::string_view pin) {
  constexpr std::string_view prefix = "sha256:";
  if (!pin.starts_with(prefix) || pin.size() != prefix.size() + 64) return false;
  for (char c : pin.substr(prefix.size()))
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

bool is_second_factor(std::string_view v) { return v == "off" || v == "otp"; }

constexpr std::string_view kHostPort =
    "host:port with a port from 1 to 65535, like 0.0.0.0:3080 or [::]:3080";

Result<void> read_auth_service(const Reader& r, const YAML::Node& node, const Place& at,
                               Config& out, std::optional<Place>& cluster_name_at) {
  return r.section(
      node, at,
      {
          {"enabled", [&](auto& v, auto& p) { return r.boolean(v, p, out.auth_enabled); }},
          {"listen_addr",
           [&](auto& v, auto& p) {
             return r.text(v, p, kHostPort, out.auth.listen_addr, is_host_port);
           }},
          {"cluster_name",
           [&](auto& v, auto& p) -> Result<void> {
             if (cluster_name_at)
               return r.fail(p, "the cluster name is already set at line " +
                                    std::to_string(cluster_name_at->line) + "; set it once");
             cluster_name_at = p;
             return r.text(v, p, "a cluster name", out.cluster_name);
           }},
          {"authentication",
           [&](auto& v, auto& p) {
             return r.section(
                 v, p,
                 {{"second_factor", [&](auto& v2, auto& p2) -> Result<void> {
                     // YAML 1.1 reads a bare off as false: judge the text.
                     return r.text(v2, p2,
                                   "off or otp (Vigil has no WebAuthn yet: on, webauthn and "
                                   "optional are not supported)",
                                   out.auth.second_factor, is_second_factor);
                   }}});
           }},
      });
}

Result<void> read_proxy_service(const Reader& r, const YAML::Node& node, const Place& at,
                                Config& out) {
  auto read_public_addr = [&](const YAML::Node& v, const Place& p) -> Result<void> {
    out.proxy.public_addr.clear();
    auto one = [&](const YAML::Node& item, const Place& item_at) -> Result<void> {
      std::string addr;
      if (auto read = r.text(item, item_at,
                             "host:port users reach the proxy at, like proxy.example.com:3080",
                             addr, is_host_port);
          !read)
        return read;
      out.proxy.public_addr.push_back(addr);
      return {};
    };
    if (v.IsSequence()) return r.list(v, p, "a list of host:port", one);
    return one(v, p);
  };
  return r.section(
      node, at,
      {
          {"enabled", [&](auto& v, auto& p) { return r.boolean(v, p, out.proxy_enabled); }},
          {"web_listen_addr",
           [&](auto& v, auto& p) {
             return r.text(v, p, kHostPort, out.proxy.web_listen_addr, is_host_port);
           }},
          {"listen_addr",
           [&](auto& v, auto& p) {
             return r.text(v, p, kHostPort, out.proxy.listen_addr, is_host_port);
           }},
          {"tunnel_listen_addr",
           [&](auto& v, auto& p) {
             return r.text(v, p, kHostPort, out.proxy.tunnel_listen_addr, is_host_port);
           }},
          {"public_addr", read_public_addr},
          {"web_assets_dir",
           [&](auto& v, auto& p) {
             return r.text(v, p, "the absolute path of the web UI's built assets, like /usr/share/vigil/web",
                           out.proxy.web_assets_dir, is_clean_absolute_path);
           }},
      });
}

Result<void> read_enhanced_recording(const Reader& r, const YAML::Node& node, const Place& at,
                                     EnhancedRecording& out) {
  const std::string clean_path_rules = "no \".\" or \"..\" parts, no \"//\", no trailing \"/\"";
  const std::string cgroup_path_expected =
      "the absolute path where cgroup v2 is mounted, like /cgroup2 (" + clean_path_rules + ")";
  const std::string root_path_expected =
      "a path below cgroup_path for this node's session cgroups, like /vigil (starting with "
      "\"/\", " +
      clean_path_rules + ")";
  return r.section(node, at,
                   {
                       {"enabled",
                        [&](auto& v, auto& p) {
                          out.enabled_given = true;
                          return r.boolean(v, p, out.enabled);
                        }},
                       {"command_buffer_size",
                        [&](auto& v, auto& p) { return pages(r, v, p, out.command_buffer_size); }},
                       {"disk_buffer_size",
                        [&](auto& v, auto& p) { return pages(r, v, p, out.disk_buffer_size); }},
                       {"network_buffer_size",
                        [&](auto& v, auto& p) { return pages(r, v, p, out.network_buffer_size); }},
                       {"failed_execs",
                        [&](auto& v, auto& p) { return r.boolean(v, p, out.failed_execs); }},
                       {"leftover_processes",
                        [&](auto& v, auto& p) {
                          return r.text(v, p,
                                        "record (processes a session leaves running stay "
                                        "recorded until they exit) or kill (they are killed when "
                                        "the session ends)",
                                        out.leftover_processes, is_leftover_policy);
                        }},
                       {"seal", [&](auto& v, auto& p) { return r.boolean(v, p, out.seal); }},
                       {"cgroup_path",
                        [&](auto& v, auto& p) {
                          return r.text(v, p, cgroup_path_expected, out.cgroup_path,
                                        is_clean_absolute_path);
                        }},
                       {"root_path",
                        [&](auto& v, auto& p) {
                          return r.text(v, p, root_path_expected, out.root_path, is_session_root);
                        }},
                   });
}

Result<void> read_kinds(const Reader& r, const YAML::Node& node, const Place& at, KindSet& out) {
  std::vector<std::string_view> names;
  for (int i = 0; i < kKindCount; ++i) names.push_back(kind_name(static_cast<Kind>(i)));
  KindSet kinds;
  auto read_kind = [&](const YAML::Node& item, const Place& item_at) -> Result<void> {
    if (!item.IsScalar())
      return r.fail(item_at,
                    "expected an event kind (" + comma_list(names) + "), got " + describe(item));
    std::optional<Kind> kind = parse_kind(item.Scalar());
    if (!kind) {
      auto suggestion = closest(item.Scalar(), names);
      return r.fail(item_at, "unknown event kind " + describe(item) +
                                 (suggestion ? "; did you mean " + std::string(*suggestion) + "?"
                                             : "; use " + comma_list(names)));
    }
    if (kinds.has(*kind))
      return r.fail(item_at, describe(item) + " is listed twice; list each kind once");
    kinds.add(*kind);
    return {};
  };
  if (auto read = r.list(node, at, "a list of event kinds (" + comma_list(names) + ")", read_kind);
      !read)
    return read;
  if (kinds.empty())
    return r.fail(at, "the list is empty; list at least one of " + comma_list(names) +
                          ", or remove the field to record " +
                          SshService{}.default_kinds.to_string());
  out = kinds;
  return {};
}

Result<void> read_ssh_service(const Reader& r, const YAML::Node& node, const Place& at,
                              SshService& out) {
  auto read_ca_key = [&](const YAML::Node& item, const Place& item_at) -> Result<void> {
    std::string path;
    if (auto read = r.text(item, item_at, "a file path", path); !read) return read;
    out.trusted_user_ca_keys.push_back(path);
    return {};
  };
  return r.section(
      node, at,
      {
          {"enabled", [&](auto& v, auto& p) { return r.boolean(v, p, out.enabled); }},
          {"listen_addr",
           [&](auto& v, auto& p) {
             return r.text(v, p,
                           "host:port with a port from 1 to 65535, like 0.0.0.0:3022 or [::]:3022",
                           out.listen_addr, is_host_port);
           }},
          {"enhanced_recording",
           [&](auto& v, auto& p) {
             return read_enhanced_recording(r, v, p, out.enhanced_recording);
           }},
          {"trusted_user_ca_keys",
           [&](auto& v, auto& p) { return r.list(v, p, "a list of file paths", read_ca_key); }},
          {"default_recording_kinds",
           [&](auto& v, auto& p) { return read_kinds(r, v, p, out.default_kinds); }},
          {"login_grace_time",
           [&](auto& v, auto& p) { return r.whole_number(v, p, "seconds", 1, 600, out.login_grace_time); }},
      });
}

// A PostgreSQL connection string as the storage keys take it: the scheme,
// and no password (in user:password@ or ?password=).
std::optional<std::string> postgres_uri_problem(std::string_view uri) {
  if (uri.rfind("postgresql://", 0) != 0 && uri.rfind("postgres://", 0) != 0)
    return "expected a PostgreSQL URI, postgresql://user@host:port/database";
  const size_t start = uri.find("://") + 3;
  const size_t end = uri.find_first_of("/?", start);
  const std::string_view authority = uri.substr(start, end == uri.npos ? uri.npos : end - start);
  const size_t at = authority.rfind('@');
  const bool userinfo_password =
      at != authority.npos && authority.substr(0, at).find(':') != authority.npos;
  std::string lower(uri);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t q = lower.find('?');
  const bool query_password =
      q != lower.npos && (lower.find("?password=", q) != lower.npos ||
                          lower.find("&password=", q) != lower.npos);
  if (userinfo_password || query_password)
    return "the URI carries a password (not repeated here): remove it and put it in a password "
           "file named by ?passfile=/path or PGPASSFILE (lines host:port:db:user:password, mode "
           "0600), or in PGPASSWORD, so that it is never in a config or a log";
  return std::nullopt;
}

// teleport.storage. A value is never echoed in an error: it may hold a password.
Result<void> read_storage(const Reader& r, const YAML::Node& node, const Place& at, Config& out) {
  std::optional<Place> type_at, conn_at;
  auto uri = [&](const YAML::Node& v, const Place& p, std::string& dst) -> Result<void> {
    if (!v.IsScalar() || v.Scalar().empty()) return r.fail(p, "expected a URI");
    if (auto why = postgres_uri_problem(v.Scalar())) return r.fail(p, *why);
    dst = v.Scalar();
    return {};
  };
  auto read = r.section(
      node, at,
      {
          {"type",
           [&](auto& v, auto& p) {
             type_at = p;
             return r.choice(v, p, "storage type", {"sqlite", "postgresql"}, out.storage.type);
           }},
          {"conn_string",
           [&](auto& v, auto& p) {
             conn_at = p;
             return uri(v, p, out.storage.conn_string);
           }},
          {"audit_events_uri",
           [&](auto& v, auto& p) -> Result<void> {
             out.storage.audit_events_uri.clear();
             auto one = [&](const YAML::Node& item, const Place& item_at) -> Result<void> {
               if (item.IsScalar() && item.Scalar().rfind("file://", 0) == 0) {
                 const std::string path = item.Scalar().substr(7);
                 if (path.size() < 5 || path[0] != '/' || path.substr(path.size() - 4) != "/log")
                   return r.fail(item_at,
                                 "a file:// URI names the log directory of a data_dir, like "
                                 "file:///var/lib/vigil/log");
                 out.storage.audit_events_uri.push_back(item.Scalar());
                 return {};
               }
               if (!item.IsScalar() || item.Scalar().empty())
                 return r.fail(item_at, "expected postgresql://... or file:///data_dir/log");
               if (auto why = postgres_uri_problem(item.Scalar()))
                 return r.fail(item_at, item.Scalar().rfind("postgres", 0) == 0
                                            ? *why
                                            : "expected postgresql://... or file:///data_dir/log");
               const std::string u = item.Scalar();
               out.storage.audit_events_uri.push_back(u);
               return {};
             };
             if (v.IsSequence()) return r.list(v, p, "a list of URIs", one);
             return one(v, p);
           }},
      });
  if (!read) return read;
  if (out.storage.type == "postgresql" && out.storage.conn_string.empty())
    return r.fail(type_at ? *type_at : at,
                  "storage type postgresql needs conn_string: postgresql://user@host:port/db");
  if (out.storage.type != "postgresql" && !out.storage.conn_string.empty())
    return r.fail(*conn_at, "conn_string is for type: postgresql; set the type too");
  return {};
}

Result<void> read_audit(const Reader& r, const YAML::Node& node, const Place& at,
                        AuditConfig& out) {
  auto duration = [&](const YAML::Node& v, const Place& p, int64_t& into) -> Result<void> {
    std::string text;
    if (auto read = r.text(v, p, "a duration like 90d or 12h", text); !read) return read;
    auto ns = parse_retention(text);
    if (!ns) return r.fail(p, ns.error().message);
    into = *ns;
    return {};
  };
  return r.section(node, at,
                   {
                       {"retention",
                        [&](auto& v, auto& p) { return duration(v, p, out.retention_ns); }},
                       {"recording_retention",
                        [&](auto& v, auto& p) {
                          return duration(v, p, out.recording_retention_ns);
                        }},
                   });
}

// The teleport: section, or vigil:, which alone may set cluster_name.
Result<void> read_node_section(const Reader& r, const YAML::Node& node, const Place& at,
                               bool vigil_spelling, Config& out,
                               std::optional<Place>& cluster_name_at) {
  return r.section(
      node, at,
      {
          {"nodename", [&](auto& v, auto& p) { return r.text(v, p, "a node name", out.nodename); }},
          {"auth_token",
           [&](auto& v, auto& p) { return r.text(v, p, "a join token", out.auth_token); }},
          {"auth_server",
           [&](auto& v, auto& p) {
             return r.text(v, p, "an auth server address, like 127.0.0.1:3025", out.auth_server);
           }},
          {"proxy_server",
           [&](auto& v, auto& p) {
             return r.text(v, p, "a proxy address, like 127.0.0.1:3080", out.proxy_server);
           }},
          {"data_dir",
           [&](auto& v, auto& p) {
             return r.text(v, p, "an absolute path, like /var/lib/vigil", out.data_dir,
                           is_absolute);
           }},
          {"cluster_name",
           [&](auto& v, auto& p) -> Result<void> {
             if (!vigil_spelling)
               return r.fail(p,
                             "a Vigil setting that Teleport keeps elsewhere; rename the "
                             "teleport: section to vigil: to set it here");
             if (cluster_name_at)
               return r.fail(p, "the cluster name is already set at line " +
                                    std::to_string(cluster_name_at->line) + "; set it once");
             cluster_name_at = p;
             return r.text(v, p, "a cluster name", out.cluster_name);
           }},
          {"ca_pin",
           [&](auto& v, auto& p) {
             return r.text(v, p,
                           "the auth service's CA pin, sha256: and 64 hex digits, as vigilctl "
                           "status prints it",
                           out.ca_pin, is_ca_pin);
           }},
          {"storage", [&](auto& v, auto& p) { return read_storage(r, v, p, out); }},
          {"diag_addr",
           [&](auto& v, auto& p) {
             return r.text(v, p,
                           "host:port of the diagnostics listener (/metrics), like "
                           "127.0.0.1:3000",
                           out.diag_addr, is_host_port);
           }},
      });
}

Result<void> read_document(const Reader& r, const YAML::Node& root, Config& out) {
  std::optional<Place> node_section;  // where teleport: or vigil: was met
  std::optional<Place> cluster_name_at;  // where the cluster name was set
  auto read_node_spelled = [&](bool vigil_spelling) -> FieldReader {
    return [&, vigil_spelling](const YAML::Node& v, const Place& p) -> Result<void> {
      if (node_section)
        return r.fail(p, "the node settings are already under " + node_section->path + ": (line " +
                             std::to_string(node_section->line) +
                             "); use either teleport: or vigil:, not both");
      node_section = p;
      return read_node_section(r, v, p, vigil_spelling, out, cluster_name_at);
    };
  };
  Result<void> read = r.section(
      root, Place{"", line_of(root)},
      {
          {"version",
           [&](auto& v, auto& p) -> Result<void> {
             if (v.IsScalar() && v.Scalar() == "v3") return {};
             return r.fail(p, "unsupported version " + describe(v) +
                                  "; Vigil reads v3 node files: write version: v3");
           }},
          {"teleport", read_node_spelled(false)},
          {"vigil", read_node_spelled(true)},
          {"proxy_service", [&](auto& v, auto& p) { return read_proxy_service(r, v, p, out); }},
          {"auth_service",
           [&](auto& v, auto& p) { return read_auth_service(r, v, p, out, cluster_name_at); }},
          {"ssh_service", [&](auto& v, auto& p) { return read_ssh_service(r, v, p, out.ssh); }},
          {"audit", [&](auto& v, auto& p) { return read_audit(r, v, p, out.audit); }},
      });
  if (!read) return read;
  if (!cluster_name_at) out.cluster_name = out.nodename;
  return {};
}

std::string host_name() {
  char name[HOST_NAME_MAX + 1] = {};
  // Fails only when the buffer is too small, which this one is not.
  [[maybe_unused]] int rc = gethostname(name, sizeof name - 1);
  assert(rc == 0);
  return name;
}

// The bounds of config.hpp, as a node file's reader words them.
const yaml::Limits& node_file_limits() {
  static const yaml::Limits limits = [] {
    yaml::Limits l;
    l.max_file_bytes = kMaxFileBytes;
    l.file_hint = ", and a node file is a few hundred: is this the right file?";
    l.max_nesting = kMaxNesting;
    l.nesting_hint =
        "; a node file needs 3 (the file, a section, a subsection or list): check the "
        "indentation and brackets";
    l.max_name_bytes = kMaxNameBytes;
    l.name_hint = " (is a value missing its key, or a quote its end?)";
    l.max_value_bytes = kMaxValueBytes;
    l.value_hint = " (paths, names, addresses): is a quote missing its end?";
    l.stuck_hint = "; check the brackets, quotes and stray characters on this line";
    return l;
  }();
  return limits;
}

Result<std::string> read_text_file(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "re"), &std::fclose);
  if (!file) return Error::sys("cannot open config file " + path);
  std::string text;
  char chunk[4096];
  // One byte past the bound is enough for parse() to refuse the file.
  while (text.size() <= kMaxFileBytes) {
    const size_t n = std::fread(chunk, 1, sizeof chunk, file.get());
    if (n == 0) break;
    text.append(chunk, n);
  }
  if (std::ferror(file.get())) return Error::sys("cannot read config file " + path);
  return text;
}

}  // namespace

Config defaults() {
  Config config;
  config.nodename = host_name();
  config.cluster_name = config.nodename;
  config.source = "<embedded defaults>";
  // Without a file, Vigil records: it is what it is for. A file follows the
  // guide, whose default is off.
  config.ssh.enhanced_recording.enabled = true;
  return config;
}

Result<Config> parse(std::string_view yaml_text, std::string_view source_name) {
  Reader reader(source_name);
  auto loaded = yaml::load_bounded(yaml_text, source_name, node_file_limits());
  if (!loaded) return loaded.error();
  // Empty documents (an empty file, only comments, a stray ---) set nothing.
  std::vector<YAML::Node>& documents = loaded.value();
  if (documents.size() > 1)
    return reader.fail(Place{"", line_of(documents[1])},
                       "a second YAML document starts here; keep the node settings in one "
                       "document (remove the extra ---)");
  Config config = defaults();
  config.ssh.enhanced_recording.enabled = false;  // a file follows the guide: off unless it says
  config.source = source_name;
  if (documents.empty()) return config;
  if (auto read = read_document(reader, documents[0], config); !read) return read.error();
  return config;
}

Result<Config> load_file(const std::string& path) {
  Result<std::string> text = read_text_file(path);
  if (!text) return text.error();
  return parse(text.value(), path);
}

Result<int64_t> parse_retention(std::string_view text) {
  constexpr int64_t kNsPerHour = 3'600'000'000'000;
  constexpr int64_t kMaxHours = 36'500 * 24;
  auto refuse = [&] {
    return Error::of(Errc::invalid_argument,
                     "\"" + std::string(text) +
                         "\" is not a retention: write a whole number of days or hours, like "
                         "90d or 12h (at most 36500d; remove the setting to keep forever)");
  };
  if (text.size() < 2 || text.size() > 8 || (text.back() != 'd' && text.back() != 'h'))
    return refuse();
  int64_t n = 0;
  for (char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9') return refuse();
    n = n * 10 + (c - '0');
  }
  int64_t hours = text.back() == 'd' ? n * 24 : n;
  if (n <= 0 || hours > kMaxHours) return refuse();
  return hours * kNsPerHour;
}

uint32_t ring_bytes(uint32_t pages) {
  assert(pages >= kMinBufferPages && pages <= kMaxBufferPages);
  return std::bit_ceil(pages) * kPageSize;
}

}  // namespace vigil::config
