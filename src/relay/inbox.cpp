#include "relay/inbox.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "audit/text_json.hpp"
#include "auditlog/layout.hpp"
#include "auditlog/timeparse.hpp"
#include "common/clock.hpp"
#include "common/fd.hpp"
#include "common/log.hpp"

namespace vigil::relay {
namespace {

using Json = nlohmann::json;
constexpr int64_t kSlackNs = 1'000'000'000;  // the search range's margin around the batch

Result<void> write_file_atomically(const std::string& dir, const std::string& name,
                                   const std::string& text) {
  const std::string path = dir + "/" + name;
  const std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Error::sys("relay inbox: cannot create " + tmp);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error::sys("relay inbox: cannot write " + tmp, n < 0 ? errno : ENOSPC);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return Error::sys("relay inbox: cannot fsync " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return Error::sys("relay inbox: cannot rename " + tmp);
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d || ::fsync(d.get()) != 0) return Error::sys("relay inbox: cannot fsync " + dir);
  return {};
}

}  // namespace

namespace {

// Validates one event without building it: nlohmann's SAX parser checks the
// grammar (and UTF-8); this handler bounds nesting, refuses a top level
// other than an object, and keeps the top-level keys (decoded, in order)
// and the values of "event", "time" and "server_id".
struct TopLevel final : Json::json_sax_t {
  int depth = 0;
  std::string why;
  std::vector<std::string> keys;  // decoded, in order
  int current = -1;               // which of the three the value is for
  bool has[3] = {false, false, false};
  bool is_string[3] = {false, false, false};
  std::string value[3];  // event, time, server_id

  static int which(const std::string& k) {
    if (k == "event") return 0;
    if (k == "time") return 1;
    if (k == "server_id") return 2;
    return -1;
  }
  bool scalar() {
    if (depth == 0) return refuse("not a JSON object");
    if (depth == 1 && current >= 0) has[current] = true;
    return true;
  }
  bool refuse(std::string w) {
    if (why.empty()) why = std::move(w);
    return false;
  }
  bool null() override { return scalar(); }
  bool boolean(bool) override { return scalar(); }
  bool number_integer(number_integer_t) override { return scalar(); }
  bool number_unsigned(number_unsigned_t) override { return scalar(); }
  bool number_float(number_float_t, const string_t&) override { return scalar(); }
  bool binary(binary_t&) override { return scalar(); }
  bool string(string_t& v) override {
    if (depth == 0) return refuse("not a JSON object");
    if (depth == 1 && current >= 0) {
      has[current] = is_string[current] = true;
      value[current] = std::move(v);
    }
    return true;
  }
  bool open() {
    if (depth == 1 && current >= 0) has[current] = true;
    if (++depth > audit::kMaxJsonDepth)
      return refuse("nested deeper than " + std::to_string(audit::kMaxJsonDepth) + " levels");
    return true;
  }
  bool start_object(std::size_t) override { return open(); }
  bool start_array(std::size_t) override {
    if (depth == 0) return refuse("not a JSON object");
    return open();
  }
  bool end_object() override { return --depth, true; }
  bool end_array() override { return --depth, true; }
  bool key(string_t& k) override {
    if (depth == 1) {
      current = which(k);
      keys.push_back(k);
    }
    return true;
  }
  bool parse_error(std::size_t at, const std::string&, const nlohmann::detail::exception&) override {
    return refuse("not JSON at byte " + std::to_string(at));
  }
};

size_t skip_ws(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i;
  return i;
}

size_t skip_string(std::string_view s, size_t i) {  // s[i] == '"'
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') ++i;
    else if (s[i] == '"') return i + 1;
  }
  return s.size();
}

size_t skip_value(std::string_view s, size_t i) {
  if (i >= s.size()) return i;
  if (s[i] == '"') return skip_string(s, i);
  if (s[i] == '{' || s[i] == '[') {
    size_t depth = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '"') {
        i = skip_string(s, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      else if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      ++i;
    }
    return s.size();
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ' ' && s[i] != '\t' &&
         s[i] != '\r' && s[i] != '\n')
    ++i;
  return i;
}

// "server_id":..,"server_hostname":..,"relay_seq": of one caller, escaped once a batch.
std::string stamp_prefix(const Caller& caller) {
  return "{\"server_id\":" + Json(caller.server_id).dump(-1, ' ', false, Json::error_handler_t::replace) +
         ",\"server_hostname\":" +
         Json(caller.server_hostname).dump(-1, ' ', false, Json::error_handler_t::replace) +
         ",\"relay_seq\":";
}

Result<std::string> stamp_event(std::string_view json, const Caller& caller,
                                const std::string& prefix, uint64_t seq, int64_t* time_ns) {
  if (json.size() >= auditlog::kMaxEventBytes)
    return Error::of(Errc::invalid_argument, "longer than an audit event may be");
  TopLevel top;
  const bool parsed = Json::sax_parse(json.begin(), json.end(), &top, nlohmann::detail::input_format_t::json, true);
  if (!parsed || top.depth != 0)
    return Error::of(Errc::invalid_argument, top.why.empty() ? "not JSON" : top.why);
  if (!top.is_string[0] || top.value[0].empty())
    return Error::of(Errc::invalid_argument, "no \"event\" (the event's type)");
  std::optional<int64_t> ns;
  if (top.is_string[1]) ns = auditlog::parse_rfc3339(top.value[1]);
  if (!ns) return Error::of(Errc::invalid_argument, "no RFC 3339 \"time\"");
  if (top.has[2] && !(top.is_string[2] && top.value[2] == caller.server_id))
    return Error::of(Errc::permission_denied,
                     "its server_id " + (top.is_string[2] ? Json(top.value[2]).dump(-1, ' ', false, Json::error_handler_t::replace) : std::string("(not a string)")) +
                         " is not the caller's (" + caller.server_id +
                         "): a node sends only its own events");
  {
    std::vector<std::string_view> sorted(top.keys.begin(), top.keys.end());
    std::sort(sorted.begin(), sorted.end());
    if (auto d = std::adjacent_find(sorted.begin(), sorted.end()); d != sorted.end())
      return Error::of(Errc::invalid_argument, "the key \"" + std::string(*d) + "\" twice");
  }
  // The members as sent, but the three the Inbox sets, after them.
  std::string line;
  line.reserve(json.size() + prefix.size() + 24);
  line += prefix;
  line += std::to_string(seq);
  size_t i = skip_ws(json, 0) + 1;  // past '{'
  for (const std::string& key : top.keys) {
    i = skip_ws(json, i);
    const size_t begin = i;
    i = skip_value(json, skip_ws(json, skip_ws(json, skip_string(json, i)) + 1));  // key, ':', value
    const size_t end = i;
    i = skip_ws(json, i) + 1;  // ',' or '}'
    if (key == "server_id" || key == "server_hostname" || key == "relay_seq") continue;
    line += ',';
    line.append(json.substr(begin, end - begin));
  }
  line += "}\n";
  if (auto r = auditlog::check_event_line(line); !r) return r.error();
  *time_ns = *ns;
  return line;
}

}  // namespace

Result<std::string> rewrite_event(std::string_view json, const Caller& caller, uint64_t seq,
                                  int64_t* time_ns) {
  return stamp_event(json, caller, stamp_prefix(caller), seq, time_ns);
}

namespace {

Result<Json> node_json(uint64_t last, bool has_pending, uint64_t first, uint64_t plast,
                       int64_t from_ns, int64_t to_ns) {
  Json j = {{"last", last}};
  if (has_pending)
    j["pending"] = {{"first", first}, {"last", plast}, {"from_ns", from_ns}, {"to_ns", to_ns}};
  return j;
}

Result<std::string> read_whole(const std::string& path, size_t max) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::sys("relay inbox: cannot open " + path);
  std::string text;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::sys("relay inbox: cannot read " + path);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > max)
      return Error::of(Errc::data_loss, "relay inbox: " + path + " is larger than " +
                                            std::to_string(max) + " bytes; it is not the Inbox's");
  }
  return text;
}

constexpr size_t kMaxStateBytes = 1u << 30;

}  // namespace

// A node's state from its JSON ({"last":L[,"pending":{...}]}).
static bool parse_node(const Json& j, uint64_t* last, bool* has_pending, uint64_t p[2],
                       int64_t t[2]) {
  if (!j.is_object() || !j.contains("last") || !j["last"].is_number_unsigned()) return false;
  *last = j["last"].get<uint64_t>();
  *has_pending = false;
  if (!j.contains("pending")) return true;
  const Json& q = j["pending"];
  if (!q.is_object() || !q.contains("first") || !q.contains("last") || !q.contains("from_ns") ||
      !q.contains("to_ns") || !q["first"].is_number_unsigned() || !q["last"].is_number_unsigned() ||
      !q["from_ns"].is_number_integer() || !q["to_ns"].is_number_integer())
    return false;
  *has_pending = true;
  p[0] = q["first"].get<uint64_t>();
  p[1] = q["last"].get<uint64_t>();
  t[0] = q["from_ns"].get<int64_t>();
  t[1] = q["to_ns"].get<int64_t>();
  return true;
}

Result<std::unique_ptr<Inbox>> Inbox::open(auditlog::AuditStore& store, InboxOptions options) {
  if (options.state_dir.empty())
    return Error::of(Errc::invalid_argument, "relay inbox: no state_dir given");
  const std::string dir = options.state_dir;
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    if (::mkdir(dir.substr(0, pos).c_str(), 0700) != 0 && errno != EEXIST)
      return Error::sys("relay inbox: cannot create " + dir.substr(0, pos));
  }
  std::unique_ptr<Inbox> inbox(new Inbox(store, std::move(options)));
  std::lock_guard lk(inbox->state_mu_);
  if (auto r = inbox->load(); !r) return r.error();
  return inbox;
}

// The snapshot, the first format's checkpoints, the journal; then every
// pending batch resolved and a fresh snapshot.
Result<void> Inbox::load() {
  const std::string& dir = opt_.state_dir;
  auto merge = [this](const std::string& id, uint64_t last, bool has_pending, const uint64_t p[2],
                      const int64_t t[2]) {
    Node& n = nodes_[id];
    n.last = std::max(n.last, last);
    if (has_pending && p[1] > n.last) {
      if (n.has_pending) {
        n.pending.first = std::min(n.pending.first, p[0]);
        n.pending.last = std::max(n.pending.last, p[1]);
        n.pending.from_ns = std::min(n.pending.from_ns, t[0]);
        n.pending.to_ns = std::max(n.pending.to_ns, t[1]);
      } else {
        n.has_pending = true;
        n.pending = {p[0], p[1], t[0], t[1]};
      }
    }
  };
  const std::string state_path = dir + "/state.json";
  if (::access(state_path.c_str(), F_OK) == 0) {
    auto text = read_whole(state_path, kMaxStateBytes);
    if (!text) return text.error();
    auto j = audit::parse_json_bounded(*text);
    if (!j || !j->is_object() || !j->contains("nodes") || !(*j)["nodes"].is_object())
      return Error::of(Errc::data_loss, "relay inbox: " + state_path +
                                            " is damaged; restore it from a backup (without it the "
                                            "nodes' events are refused or doubled)");
    for (const auto& [id, v] : (*j)["nodes"].items()) {
      uint64_t last = 0, p[2] = {0, 0};
      int64_t t[2] = {0, 0};
      bool pending = false;
      if (!auditlog::is_safe_dir_name(id) || !parse_node(v, &last, &pending, p, t))
        return Error::of(Errc::data_loss, "relay inbox: " + state_path + ": node " + id +
                                              " is damaged; restore the file from a backup");
      merge(id, last, pending, p, t);
    }
  }
  // Checkpoints of the first format: one file a node.
  std::vector<std::string> legacy;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n.size() > 5 && n.ends_with(".json") && n != "state.json")
        legacy.emplace_back(n.substr(0, n.size() - 5));
    }
    ::closedir(d);
  } else {
    return Error::sys("relay inbox: cannot list " + dir);
  }
  for (const auto& id : legacy) {
    const std::string path = dir + "/" + id + ".json";
    auto text = read_whole(path, 4096);
    if (!text) return text.error();
    auto j = audit::parse_json_bounded(*text);
    uint64_t last = 0, p[2] = {0, 0};
    int64_t t[2] = {0, 0};
    bool pending = false;
    if (!j || !parse_node(*j, &last, &pending, p, t))
      return Error::of(Errc::data_loss,
                       "relay inbox: " + path +
                           " is damaged; restore it or remove it (the node's next events are "
                           "then refused until it resends from 1)");
    merge(id, last, pending, p, t);
  }
  if (auto r = replay_journal(); !r) return r;
  std::vector<std::string> pending;
  for (const auto& [id, n] : nodes_)
    if (n.has_pending) pending.push_back(id);
  if (!pending.empty())
    if (auto r = resolve_pending(pending); !r) return r;
  if (auto r = snapshot(); !r) return r;
  for (const auto& id : legacy) ::unlink((dir + "/" + id + ".json").c_str());
  return {};
}

Result<void> Inbox::replay_journal() {
  const std::string path = opt_.state_dir + "/journal.log";
  journal_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!journal_) return Error::sys("relay inbox: cannot open " + path);
  auto text = read_whole(path, kMaxStateBytes);
  if (!text) return text.error();
  // A last line without '\n' was torn by a crash: never synced, no append
  // followed it.
  const size_t whole = text->rfind('\n') == std::string::npos ? 0 : text->rfind('\n') + 1;
  if (whole != text->size()) {
    log::warn("relay inbox: " + path + ": cut off a torn last record (" +
              std::to_string(text->size() - whole) + " bytes) left by a crash");
    if (::ftruncate(journal_.get(), static_cast<off_t>(whole)) != 0 || ::fsync(journal_.get()) != 0)
      return Error::sys("relay inbox: cannot cut " + path);
  }
  journal_bytes_ = whole;
  size_t at = 0, line_no = 0;
  while (at < whole) {
    const size_t nl = text->find('\n', at);
    std::string_view line(text->data() + at, nl - at);
    at = nl + 1;
    ++line_no;
    const Error damaged =
        Error::of(Errc::data_loss, "relay inbox: " + path + ":" + std::to_string(line_no) +
                                       " is damaged; restore the state directory from a backup");
    auto j = audit::parse_json_bounded(line);
    if (!j || !j->is_object() || j->size() != 1) return damaged;
    const bool intent = j->contains("intent");
    const Json& list = intent ? (*j)["intent"] : j->contains("commit") ? (*j)["commit"] : Json();
    if (!list.is_array()) return damaged;
    for (const Json& e : list) {
      if (!e.is_object() || !e.contains("node") || !e["node"].is_string() || !e.contains("last") ||
          !e["last"].is_number_unsigned())
        return damaged;
      const std::string id = e["node"].get<std::string>();
      if (!auditlog::is_safe_dir_name(id)) return damaged;
      const uint64_t last = e["last"].get<uint64_t>();
      Node& n = nodes_[id];
      if (!intent) {  // settled: stored up to `last`
        n.last = std::max(n.last, last);
        n.has_pending = false;
        continue;
      }
      Json wrapped = {{"last", n.last}, {"pending", e}};
      wrapped["pending"].erase("node");
      uint64_t l = 0, p[2] = {0, 0};
      int64_t t[2] = {0, 0};
      bool has = false;
      if (!parse_node(wrapped, &l, &has, p, t)) return damaged;
      if (p[1] <= n.last) continue;  // older than the snapshot
      if (n.has_pending) {
        n.pending.first = std::min(n.pending.first, p[0]);
        n.pending.last = std::max(n.pending.last, p[1]);
        n.pending.from_ns = std::min(n.pending.from_ns, t[0]);
        n.pending.to_ns = std::max(n.pending.to_ns, t[1]);
      } else {
        n.has_pending = true;
        n.pending = {p[0], p[1], t[0], t[1]};
      }
    }
  }
  return {};
}

// Appends one record; on failure the journal is cut back to what it held.
Result<void> Inbox::journal_append(const std::string& line, bool sync) {
  if (!journal_) return Error::of(Errc::unavailable, "relay inbox: the journal is not open");
  size_t done = 0;
  Error failed;
  bool ok = true;
  while (done < line.size()) {
    ssize_t n = ::write(journal_.get(), line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failed = Error::sys("relay inbox: cannot write the journal", n < 0 ? errno : ENOSPC);
      ok = false;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (ok && sync && ::fdatasync(journal_.get()) != 0) {
    failed = Error::sys("relay inbox: cannot fdatasync the journal");
    ok = false;
  }
  if (ok) {
    journal_bytes_ += line.size();
    return {};
  }
  if (::ftruncate(journal_.get(), static_cast<off_t>(journal_bytes_)) != 0) {
    log::error("relay inbox: cannot cut the journal back after a failed write; events are refused "
               "until the auth service restarts");
    journal_.reset();
  }
  return failed;
}

// state.json from every node, then the journal emptied.
Result<void> Inbox::snapshot() {
  Json nodes = Json::object();
  for (const auto& [id, n] : nodes_) {
    auto j = node_json(n.last, n.has_pending, n.pending.first, n.pending.last, n.pending.from_ns,
                       n.pending.to_ns);
    nodes[id] = std::move(*j);
  }
  const Json state = {{"nodes", std::move(nodes)}};
  if (auto r = write_file_atomically(opt_.state_dir, "state.json", state.dump() + "\n"); !r) return r;
  if (opt_.after_snapshot) opt_.after_snapshot();
  if (::ftruncate(journal_.get(), 0) != 0 || ::fsync(journal_.get()) != 0)
    return Error::sys("relay inbox: cannot empty the journal");
  journal_bytes_ = 0;
  return {};
}

// Which of the pending batches' events are in the store: their prefix.
// One search over the union of their ranges.
Result<void> Inbox::resolve_pending(const std::vector<std::string>& ids) {
  std::map<std::string, std::vector<bool>> found;
  auditlog::Query q;
  q.from_ns = INT64_MAX;
  q.to_ns = INT64_MIN;
  for (const auto& id : ids) {
    const Pending& p = nodes_[id].pending;
    found[id].assign(p.last - p.first + 1, false);
    q.from_ns = std::min(q.from_ns, p.from_ns - kSlackNs);
    q.to_ns = std::max(q.to_ns, p.to_ns + kSlackNs);
  }
  q.limit = 1000;
  for (;;) {
    auto page = store_.search(q);
    if (!page) return page.error();
    for (const auto& line : page->lines) {
      // Only lines that name relay_seq need a full look.
      if (line.find("\"relay_seq\"") == std::string::npos) continue;
      auto j = audit::parse_json_bounded(line);
      if (!j || !j->is_object()) continue;
      auto id = j->find("server_id");
      auto seq = j->find("relay_seq");
      if (id == j->end() || seq == j->end() || !id->is_string() || !seq->is_number_unsigned())
        continue;
      auto f = found.find(id->get<std::string>());
      if (f == found.end()) continue;
      const Pending& p = nodes_[f->first].pending;
      const uint64_t s = seq->get<uint64_t>();
      if (s >= p.first && s <= p.last) f->second[s - p.first] = true;
    }
    if (page->next.empty()) break;
    q.after = page->next;
  }
  Json commit = Json::array();
  for (auto& [id, f] : found) {
    Node& n = nodes_[id];
    uint64_t stored = 0;
    while (stored < f.size() && f[stored]) ++stored;
    const uint64_t last = stored == 0 ? n.last : std::max(n.last, n.pending.first + stored - 1);
    log::info("relay inbox: node " + id + ": an interrupted batch of events " +
              std::to_string(n.pending.first) + ".." + std::to_string(n.pending.last) +
              " was stored up to " + std::to_string(last));
    n.last = last;
    n.has_pending = false;
    commit.push_back({{"node", id}, {"last", last}});
  }
  // Unsynced: the next intent's fdatasync carries it; lost, the search is
  // made again and finds the same.
  if (auto r = journal_append(Json{{"commit", commit}}.dump() + "\n", false); !r)
    log::warn("relay inbox: " + r.error().message);
  return {};
}

Result<uint64_t> Inbox::last_seq(const std::string& server_id) {
  if (!auditlog::is_safe_dir_name(server_id))
    return Error::of(Errc::invalid_argument, "relay inbox: bad server_id");
  std::lock_guard lk(state_mu_);
  auto it = nodes_.find(server_id);
  return it == nodes_.end() ? 0 : it->second.last;
}

InboxStats Inbox::stats() const {
  std::lock_guard lk(state_mu_);
  return stats_;
}

size_t Inbox::queued() const {
  std::lock_guard lk(mu_);
  return queue_.size();
}

Result<uint64_t> Inbox::accept(const Caller& caller, const Batch& batch) {
  if (caller.server_id.empty() || caller.server_id.size() > kMaxNameBytes ||
      !auditlog::is_safe_dir_name(caller.server_id))
    return Error::of(Errc::unauthenticated,
                     "relay inbox: the caller has no usable server_id (a node certificate)");
  if (!batch.server_id.empty() && batch.server_id != caller.server_id)
    return Error::of(Errc::permission_denied,
                     "relay inbox: the batch names server " + batch.server_id + " but the caller is " +
                         caller.server_id + ": a node sends only its own events");
  if (batch.first_seq == 0 || batch.events.empty())
    return Error::of(Errc::invalid_argument,
                     "relay inbox: a batch needs first_seq >= 1 and at least one event");
  if (batch.events.size() > kMaxBatchEvents || batch.event_bytes() > kMaxBatchBytes)
    return Error::of(Errc::invalid_argument, "relay inbox: the batch is larger than allowed");

  // Checked and stamped by the caller's thread, before any lock.
  Request req;
  req.server_id = &caller.server_id;
  req.first_seq = batch.first_seq;
  req.lines.reserve(batch.events.size());
  req.times.reserve(batch.events.size());
  const std::string prefix = stamp_prefix(caller);
  for (size_t i = 0; i < batch.events.size(); ++i) {
    int64_t t = 0;
    auto line = stamp_event(batch.events[i], caller, prefix, batch.first_seq + i, &t);
    if (!line) {
      Error e = line.error();
      e.message = "relay: events[" + std::to_string(i) + "] (seq " +
                  std::to_string(batch.first_seq + i) + ") refused: " + e.message;
      return e;
    }
    req.lines.push_back(std::move(*line));
    req.times.push_back(t);
  }

  std::unique_lock lk(mu_);
  queue_.push_back(&req);
  while (!req.done) {
    if (leader_) {
      cv_.wait(lk);
      continue;
    }
    leader_ = true;
    const size_t take = std::min(queue_.size(), opt_.max_group_batches);
    std::vector<Request*> group(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(take));
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(take));
    lk.unlock();
    commit_group(group);
    lk.lock();
    for (Request* r : group) r->done = true;
    leader_ = false;
    cv_.notify_all();
  }
  return std::move(req.result);
}

// Stores a group of batches: their intents in one synced journal record,
// their events in one sync append, then their answers.
void Inbox::commit_group(std::vector<Request*> group) {
  std::lock_guard st(state_mu_);
  // Batches a failed append left pending are resolved first.
  {
    std::vector<std::string> pending;
    for (Request* r : group) {
      const Node& n = nodes_[*r->server_id];
      if (n.has_pending &&
          std::find(pending.begin(), pending.end(), *r->server_id) == pending.end())
        pending.push_back(*r->server_id);
    }
    if (!pending.empty())
      if (auto res = resolve_pending(pending); !res) {
        const Error e = Error::of(Errc::unavailable,
                                  "relay inbox: the audit store cannot say what it holds of an "
                                  "earlier batch (" + res.error().message + "); retry later");
        for (Request* r : group)
          if (nodes_[*r->server_id].has_pending) r->result = e;
        group.erase(std::remove_if(group.begin(), group.end(),
                                   [&](Request* r) { return nodes_[*r->server_id].has_pending; }),
                    group.end());
      }
  }
  // Each batch against its node's last, as the batches before it in the
  // group leave it.
  struct Span {
    uint64_t first = 0, last = 0;
    int64_t from = INT64_MAX, to = INT64_MIN;
  };
  std::map<std::string, Span> spans;
  std::vector<std::pair<Request*, size_t>> parts;  // a batch and its first new line
  std::vector<Request*> answered_after;            // answers that count on this group
  for (Request* r : group) {
    const std::string& id = *r->server_id;
    auto s = spans.find(id);
    const uint64_t last = s != spans.end() ? s->second.last : nodes_[id].last;
    if (r->first_seq > last + 1) {
      r->result = Error::of(Errc::failed_precondition,
                            "relay inbox: the batch starts at event " + std::to_string(r->first_seq) +
                                " but the auth service holds this node's events up to " +
                                std::to_string(last) + ": resend from " + std::to_string(last + 1));
      continue;
    }
    const uint64_t skip = last + 1 - r->first_seq;
    if (skip >= r->lines.size()) {  // all stored: the ack was lost
      r->result = last;
      if (s != spans.end()) answered_after.push_back(r);
      continue;
    }
    Span& span = spans[id];
    if (span.first == 0) span.first = last + 1;
    span.last = r->first_seq + r->lines.size() - 1;
    for (size_t i = skip; i < r->times.size(); ++i) {
      span.from = std::min(span.from, r->times[i]);
      span.to = std::max(span.to, r->times[i]);
    }
    r->result = span.last;
    parts.emplace_back(r, skip);
  }
  if (parts.empty()) return;

  auto fail_all = [&](const Error& e) {
    for (auto& [r, skip] : parts) r->result = e;
    for (Request* r : answered_after) r->result = e;
  };
  // 1. The intents, durable before any event is appended. The store files a
  // line by its writer's clock, the search by the event's time: the range
  // spans both, so events stamped long before (a node's clock, a spool that
  // waited) are found where they were written.
  const int64_t now = opt_.now_ns ? opt_.now_ns() : clock::realtime_ns();
  Json intents = Json::array();
  for (auto& [id, s] : spans) {
    s.from = std::min(s.from, now);
    s.to = std::max(s.to, now);
    intents.push_back(
        {{"node", id}, {"first", s.first}, {"last", s.last}, {"from_ns", s.from}, {"to_ns", s.to}});
  }
  if (auto r = journal_append(Json{{"intent", intents}}.dump() + "\n", true); !r) {
    fail_all(Error::of(Errc::unavailable, "relay inbox: " + r.error().message + "; retry later"));
    return;
  }
  for (auto& [id, s] : spans) {
    Node& n = nodes_[id];
    n.has_pending = true;
    n.pending = {s.first, s.last, s.from, s.to};
  }
  // 2. The events, one append for the group.
  std::vector<std::string_view> views;
  size_t count = 0;
  for (auto& [r, skip] : parts) count += r->lines.size() - skip;
  views.reserve(count);
  for (auto& [r, skip] : parts)
    for (size_t i = skip; i < r->lines.size(); ++i) views.emplace_back(r->lines[i]);
  if (auto r = store_.append(views, auditlog::Durability::sync); !r) {
    // Some of the group may be stored: find out now, or before the node's next batch.
    std::vector<std::string> ids;
    for (auto& [id, s] : spans) ids.push_back(id);
    if (auto again = resolve_pending(ids); !again)
      log::warn("relay inbox: " + again.error().message);
    fail_all(Error::of(Errc::unavailable, "relay inbox: the audit store refused the events (" +
                                              r.error().message + "); retry later"));
    return;
  }
  if (opt_.after_append) opt_.after_append();
  // 3. Settled; the commit record spares the next start a search.
  Json commit = Json::array();
  for (auto& [id, s] : spans) {
    Node& n = nodes_[id];
    n.last = s.last;
    n.has_pending = false;
    commit.push_back({{"node", id}, {"last", s.last}});
  }
  stats_.groups++;
  stats_.batches += parts.size();
  stats_.events += count;
  if (auto r = journal_append(Json{{"commit", commit}}.dump() + "\n", false); !r)
    log::warn("relay inbox: " + r.error().message);  // the intent is resolved at the next start
  if (journal_bytes_ > opt_.journal_max_bytes)
    if (auto r = snapshot(); !r) log::warn("relay inbox: " + r.error().message);
}

}  // namespace vigil::relay
