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

Result<std::string> rewrite_event(std::string_view json, const Caller& caller, uint64_t seq,
                                  int64_t* time_ns) {
  if (json.size() >= auditlog::kMaxEventBytes)
    return Error::of(Errc::invalid_argument, "longer than an audit event may be");
  std::string why;
  auto value = audit::parse_json_bounded(json, &why);
  if (!value) return Error::of(Errc::invalid_argument, why);
  if (!value->is_object()) return Error::of(Errc::invalid_argument, "not a JSON object");
  auto ev = value->find("event");
  if (ev == value->end() || !ev->is_string() || ev->get_ref<const std::string&>().empty())
    return Error::of(Errc::invalid_argument, "no \"event\" (the event's type)");
  auto t = value->find("time");
  std::optional<int64_t> ns;
  if (t != value->end() && t->is_string()) ns = auditlog::parse_rfc3339(t->get<std::string>());
  if (!ns) return Error::of(Errc::invalid_argument, "no RFC 3339 \"time\"");
  auto id = value->find("server_id");
  if (id != value->end() && !(id->is_string() && id->get<std::string>() == caller.server_id))
    return Error::of(Errc::permission_denied,
                     "its server_id " + id->dump() + " is not the caller's (" + caller.server_id +
                         "): a node sends only its own events");
  (*value)["server_id"] = caller.server_id;
  (*value)["server_hostname"] = caller.server_hostname;
  (*value)["relay_seq"] = seq;
  std::string line = value->dump(-1, ' ', false, Json::error_handler_t::replace);
  line += '\n';
  if (auto r = auditlog::check_event_line(line); !r) return r.error();
  *time_ns = *ns;
  return line;
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
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return Error::sys("relay inbox: cannot list " + dir);
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n.size() > 5 && n.ends_with(".json")) names.emplace_back(n.substr(0, n.size() - 5));
  }
  ::closedir(d);
  std::lock_guard lk(inbox->mu_);
  for (const auto& id : names) {
    auto node = inbox->node_locked(id);
    if (!node) return node.error();
    if ((*node)->has_pending)
      if (auto r = inbox->resolve_pending(id, **node); !r) return r.error();
  }
  return inbox;
}

// The node's state, read from its checkpoint the first time.
Result<Inbox::Node*> Inbox::node_locked(const std::string& server_id) {
  if (auto it = nodes_.find(server_id); it != nodes_.end()) return &it->second;
  Node node;
  const std::string path = opt_.state_dir + "/" + server_id + ".json";
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd) {
    std::string text(4096, '\0');
    ssize_t n = ::read(fd.get(), text.data(), text.size());
    if (n < 0) return Error::sys("relay inbox: cannot read " + path);
    text.resize(static_cast<size_t>(n));
    auto j = audit::parse_json_bounded(text);
    const Error damaged = Error::of(
        Errc::data_loss, "relay inbox: " + path +
                             " is damaged; restore it or remove it (the node's next events are "
                             "then refused until it resends from 1)");
    if (!j || !j->is_object() || !j->contains("last") || !(*j)["last"].is_number_unsigned())
      return damaged;
    node.last = (*j)["last"].get<uint64_t>();
    if (j->contains("pending")) {
      const Json& p = (*j)["pending"];
      if (!p.is_object() || !p.contains("first") || !p.contains("last") ||
          !p.contains("from_ns") || !p.contains("to_ns") || !p["first"].is_number_unsigned() ||
          !p["last"].is_number_unsigned() || !p["from_ns"].is_number_integer() ||
          !p["to_ns"].is_number_integer())
        return damaged;
      node.has_pending = true;
      node.pending = {p["first"].get<uint64_t>(), p["last"].get<uint64_t>(),
                      p["from_ns"].get<int64_t>(), p["to_ns"].get<int64_t>()};
    }
  } else if (errno != ENOENT) {
    return Error::sys("relay inbox: cannot open " + path);
  }
  return &nodes_.emplace(server_id, node).first->second;
}

Result<void> Inbox::write_checkpoint(const std::string& server_id, const Node& node) {
  Json j = {{"last", node.last}};
  if (node.has_pending)
    j["pending"] = {{"first", node.pending.first},
                    {"last", node.pending.last},
                    {"from_ns", node.pending.from_ns},
                    {"to_ns", node.pending.to_ns}};
  return write_file_atomically(opt_.state_dir, server_id + ".json", j.dump() + "\n");
}

// Which of the pending batch's events are in the store: their prefix.
Result<void> Inbox::resolve_pending(const std::string& server_id, Node& node) {
  const Pending p = node.pending;
  std::vector<bool> found(p.last - p.first + 1, false);
  auditlog::Query q;
  q.from_ns = p.from_ns - kSlackNs;
  q.to_ns = p.to_ns + kSlackNs;
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
      if (id->get<std::string>() != server_id) continue;
      const uint64_t s = seq->get<uint64_t>();
      if (s >= p.first && s <= p.last) found[s - p.first] = true;
    }
    if (page->next.empty()) break;
    q.after = page->next;
  }
  uint64_t stored = 0;
  while (stored < found.size() && found[stored]) ++stored;
  Node next = node;
  next.has_pending = false;
  next.last = std::max(node.last, p.first + stored - 1);
  if (stored == 0) next.last = node.last;
  if (auto r = write_checkpoint(server_id, next); !r) return r;
  log::info("relay inbox: node " + server_id + ": an interrupted batch of events " +
            std::to_string(p.first) + ".." + std::to_string(p.last) + " was stored up to " +
            std::to_string(next.last));
  node = next;
  return {};
}

Result<uint64_t> Inbox::last_seq(const std::string& server_id) {
  if (!auditlog::is_safe_dir_name(server_id))
    return Error::of(Errc::invalid_argument, "relay inbox: bad server_id");
  std::lock_guard lk(mu_);
  auto node = node_locked(server_id);
  if (!node) return node.error();
  return (*node)->last;
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

  std::lock_guard lk(mu_);
  auto found = node_locked(caller.server_id);
  if (!found) return found.error();
  Node& node = **found;
  if (node.has_pending)
    if (auto r = resolve_pending(caller.server_id, node); !r)
      return Error::of(Errc::unavailable, "relay inbox: the audit store cannot say what it holds "
                                          "of an earlier batch (" +
                                              r.error().message + "); retry later");
  if (batch.first_seq > node.last + 1)
    return Error::of(Errc::failed_precondition,
                     "relay inbox: the batch starts at event " + std::to_string(batch.first_seq) +
                         " but the auth service holds this node's events up to " +
                         std::to_string(node.last) + ": resend from " +
                         std::to_string(node.last + 1));
  const uint64_t skip = node.last + 1 - batch.first_seq;
  if (skip >= batch.events.size()) return node.last;  // all stored: the ack was lost

  std::vector<std::string> lines;
  lines.reserve(batch.events.size() - skip);
  int64_t from = INT64_MAX, to = INT64_MIN;
  for (size_t i = skip; i < batch.events.size(); ++i) {
    int64_t t = 0;
    auto line = rewrite_event(batch.events[i], caller, batch.first_seq + i, &t);
    if (!line) {
      Error e = line.error();
      e.message = "relay: events[" + std::to_string(i) + "] (seq " +
                  std::to_string(batch.first_seq + i) + ") refused: " + e.message;
      return e;
    }
    from = std::min(from, t);
    to = std::max(to, t);
    lines.push_back(std::move(*line));
  }
  // The store files a line by its writer's clock, the search by the
  // event's time: the range spans both, so events stamped long before (a
  // node's clock, a spool that waited) are found where they were written.
  const int64_t now = opt_.now_ns ? opt_.now_ns() : clock::realtime_ns();
  from = std::min(from, now);
  to = std::max(to, now);
  Node next = node;
  next.has_pending = true;
  next.pending = {node.last + 1, batch.last_seq(), from, to};
  if (auto r = write_checkpoint(caller.server_id, next); !r) return r.error();
  node = next;
  std::vector<std::string_view> views(lines.begin(), lines.end());
  if (auto r = store_.append(views, auditlog::Durability::sync); !r) {
    // Some of the batch may be stored: find out now, or before the node's next batch.
    if (auto again = resolve_pending(caller.server_id, node); !again)
      log::warn("relay inbox: " + again.error().message);
    return Error::of(Errc::unavailable,
                     "relay inbox: the audit store refused the events (" + r.error().message +
                         "); retry later");
  }
  if (opt_.after_append) opt_.after_append();
  next.has_pending = false;
  next.last = batch.last_seq();
  if (auto r = write_checkpoint(caller.server_id, next); !r) {
    // Stored; the intent stays and is resolved from the store next time.
    log::warn("relay inbox: " + r.error().message);
    return batch.last_seq();
  }
  node = next;
  return node.last;
}

}  // namespace vigil::relay
