#include "config/config.hpp"

#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
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

namespace vigil::config {

namespace {

// Where a value sits, as error messages show it: its dotted field path and
// the 1-based line of its key (of the item itself, for list items). The key's
// line rather than the value's, because yaml-cpp marks an empty value at the
// next token and an alias at its anchor, both possibly far away.
struct Place {
  std::string path;
  int line = 0;
};

int line_of(const YAML::Node& node) { return node.Mark().line + 1; }

std::string child_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

// A value as error messages quote it: whole when short, else its start,
// so that a message stays readable whatever the file holds.
std::string quoted(std::string_view text) {
  constexpr size_t kShown = 80;
  if (text.size() <= kShown) return '"' + std::string(text) + '"';
  size_t cut = kShown;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
  return '"' + std::string(text.substr(0, cut)) + "...\" (" + std::to_string(text.size()) +
         " bytes)";
}

// What a value is, for "expected X, got Y".
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return quoted(node.Scalar());
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return "nothing";
  }
}

std::string comma_list(const std::vector<std::string_view>& words) {
  std::string out;
  for (std::string_view word : words) {
    if (!out.empty()) out += ", ";
    out += word;
  }
  return out;
}

using FieldReader = std::function<Result<void>(const YAML::Node& value, const Place& at)>;

struct Field {
  std::string_view key;
  FieldReader read;
};

// The generic half of reading a document: sections, lists and scalars, each
// mistake turned into an Error naming the source, the line and the field.
// What the fields are is the schema's business, below.
class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  Error fail(const Place& at, std::string_view what) const {
    std::string message = source_ + ":" + std::to_string(at.line) + ": ";
    if (!at.path.empty()) message += at.path + ": ";
    return Error{message + std::string(what), 0, Errc::invalid_argument};
  }

  // A map whose keys must be among fields, each given at most once.
  Result<void> section(const YAML::Node& node, const Place& at,
                       const std::vector<Field>& fields) const {
    if (node.IsNull()) return {};  // every field keeps its default
    if (!node.IsMap()) return fail(at, "expected a map of fields, got " + describe(node));
    std::map<std::string, int> line_of_key;
    for (const auto& entry : node) {
      const YAML::Node& key = entry.first;
      Place key_at{at.path, line_of(key)};
      if (!key.IsScalar()) return fail(key_at, "expected a field name, got " + describe(key));
      const std::string& name = key.Scalar();
      key_at.path = child_path(at.path, name);
      auto [first, is_new] = line_of_key.emplace(name, key_at.line);
      if (!is_new)
        return fail(key_at,
                    "given twice (first on line " + std::to_string(first->second) + "); keep one");
      auto field =
          std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.key == name; });
      if (field == fields.end()) return unknown_field(key_at, name, fields);
      if (auto read = field->read(entry.second, key_at); !read) return read;
    }
    return {};
  }

  // A list, each item read with its own path ("field[2]") and line. An empty
  // value is an empty list.
  Result<void> list(const YAML::Node& node, const Place& at, std::string_view expected,
                    const FieldReader& read_item) const {
    if (node.IsNull()) return {};
    if (!node.IsSequence())
      return fail(at, "expected " + std::string(expected) + ", got " + describe(node));
    size_t index = 0;
    for (const YAML::Node& item : node) {
      Place item_at{at.path + "[" + std::to_string(index++) + "]", line_of(item)};
      if (auto read = read_item(item, item_at); !read) return read;
    }
    return {};
  }

  // A non-empty scalar that is_valid accepts (any, without is_valid).
  Result<void> text(const YAML::Node& node, const Place& at, std::string_view expected,
                    std::string& out, bool (*is_valid)(std::string_view) = nullptr) const {
    if (!node.IsScalar() || node.Scalar().empty() || (is_valid && !is_valid(node.Scalar())))
      return fail(at, "expected " + std::string(expected) + ", got " + describe(node));
    out = node.Scalar();
    return {};
  }

  Result<void> boolean(const YAML::Node& node, const Place& at, bool& out) const {
    std::optional<bool> value = node.IsScalar() ? parse_bool(node.Scalar()) : std::nullopt;
    if (!value) return fail(at, "expected true or false, got " + describe(node));
    out = *value;
    return {};
  }

  Result<void> seconds(const YAML::Node& node, const Place& at, uint32_t min, uint32_t max,
                       uint32_t& out) const {
    std::optional<uint32_t> value =
        node.IsScalar() ? parse_whole_number(node.Scalar(), min, max) : std::nullopt;
    if (!value)
      return fail(at, "expected a whole number of seconds from " + std::to_string(min) + " to " +
                          std::to_string(max) + ", got " + describe(node));
    out = *value;
    return {};
  }

  Result<void> pages(const YAML::Node& node, const Place& at, uint32_t& out) const {
    std::optional<uint32_t> value =
        node.IsScalar() ? parse_whole_number(node.Scalar(), kMinBufferPages, kMaxBufferPages)
                        : std::nullopt;
    if (!value)
      return fail(at, "expected a whole number of pages from " + std::to_string(kMinBufferPages) +
                          " to " + std::to_string(kMaxBufferPages) + ", got " + describe(node));
    out = *value;
    return {};
  }

 private:
  Error unknown_field(const Place& at, std::string_view name,
                      const std::vector<Field>& fields) const {
    std::vector<std::string_view> keys;
    for (const Field& field : fields) keys.push_back(field.key);
    std::string what = "unknown field " + at.path;
    if (auto suggestion = closest(name, keys))
      what += "; did you mean " + std::string(*suggestion) + "?";
    else
      what += "; expected one of: " + comma_list(keys);
    return fail(Place{"", at.line}, what);
  }

  std::string source_;
};

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
                        [&](auto& v, auto& p) { return r.pages(v, p, out.command_buffer_size); }},
                       {"disk_buffer_size",
                        [&](auto& v, auto& p) { return r.pages(v, p, out.disk_buffer_size); }},
                       {"network_buffer_size",
                        [&](auto& v, auto& p) { return r.pages(v, p, out.network_buffer_size); }},
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
           [&](auto& v, auto& p) { return r.seconds(v, p, 1, 600, out.login_grace_time); }},
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

// A bound of kMaxNesting, kMaxNameBytes or kMaxValueBytes passed at a line.
struct LimitPassed {
  int line;
  std::string what;
};

// Walks the YAML events before any node is built, checking the bounds in
// config.hpp: how deep maps and lists nest, how long names and values are.
// Aliases are events of their own, never expanded here, so a file cannot
// multiply its size through them.
class LimitChecker : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    // yaml-cpp 0.7 can get stuck on some malformed text (a NUL after a
    // '---', for one), starting empty documents at the same place forever.
    if (document_at_ == mark.pos)
      throw LimitPassed{mark.line + 1,
                        "YAML syntax error: the text cannot be read past here; check the "
                        "brackets, quotes and stray characters on this line"};
    document_at_ = mark.pos;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override { node(); }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { node(); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string& value) override {
    const bool is_name = node();
    if (is_name && value.size() > kMaxNameBytes)
      throw LimitPassed{mark.line + 1, "a field name of " + std::to_string(value.size()) +
                                           " bytes; names are at most " +
                                           std::to_string(kMaxNameBytes) +
                                           " (is a value missing its key, or a quote its end?)"};
    if (!is_name && value.size() > kMaxValueBytes)
      throw LimitPassed{mark.line + 1,
                        "a value of " + std::to_string(value.size()) + " bytes; values are at most " +
                            std::to_string(kMaxValueBytes) +
                            " (paths, names, addresses): is a quote missing its end?"};
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    open(mark, false);
  }
  void OnSequenceEnd() override { levels_.pop_back(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    open(mark, true);
  }
  void OnMapEnd() override { levels_.pop_back(); }

 private:
  struct Level {
    bool map;
    bool name_next;  // in a map, names and values alternate
  };

  // A node starts in the current level; true when it is a map's key.
  bool node() {
    if (levels_.empty() || !levels_.back().map) return false;
    const bool is_name = levels_.back().name_next;
    levels_.back().name_next = !is_name;
    return is_name;
  }

  void open(const YAML::Mark& mark, bool map) {
    node();
    if (levels_.size() >= static_cast<size_t>(kMaxNesting))
      throw LimitPassed{mark.line + 1,
                        "maps and lists nest more than " + std::to_string(kMaxNesting) +
                            " levels deep here; a node file needs 3 (the file, a section, "
                            "a subsection or list): check the indentation and brackets"};
    levels_.push_back({map, true});
  }

  std::vector<Level> levels_;
  std::optional<int> document_at_;  // where the last document started
};

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
  if (yaml_text.size() > kMaxFileBytes) {
    const auto line = std::count(yaml_text.begin(), yaml_text.begin() + kMaxFileBytes, '\n') + 1;
    return reader.fail(Place{"", static_cast<int>(line)},
                       "the file goes past " + std::to_string(kMaxFileBytes) +
                           " bytes here, and a node file is a few hundred: is this the right "
                           "file?");
  }
  std::vector<YAML::Node> documents;
  try {
    {
      std::istringstream in{std::string(yaml_text)};
      YAML::Parser events(in);
      LimitChecker limits;
      while (events.HandleNextDocument(limits)) {
      }
    }
    documents = YAML::LoadAll(std::string(yaml_text));
  } catch (const LimitPassed& e) {
    return reader.fail(Place{"", e.line}, e.what);
  } catch (const YAML::Exception& e) {
    return Error{std::string(source_name) + ":" + std::to_string(e.mark.line + 1) + ":" +
                 std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg +
                 "; check the indentation, quotes and brackets here", 0, Errc::invalid_argument};
  }
  // Empty documents (an empty file, only comments, a stray ---) set nothing.
  std::erase_if(documents, [](const YAML::Node& document) { return document.IsNull(); });
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

uint32_t ring_bytes(uint32_t pages) {
  assert(pages >= kMinBufferPages && pages <= kMaxBufferPages);
  return std::bit_ceil(pages) * kPageSize;
}

}  // namespace vigil::config
