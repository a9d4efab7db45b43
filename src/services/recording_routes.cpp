#include "services/recording_routes.hpp"

#include <algorithm>
#include <charconv>
#include <set>

#include <nlohmann/json.hpp>

#include "audit/timefmt.hpp"
#include "audit/uuid.hpp"
#include "auditlog/emitter.hpp"
#include "authsvc/service.hpp"
#include "common/log.hpp"
#include "recording/listing.hpp"
#include "recording/reader.hpp"
#include "recording/recording_store.hpp"
#include "recording/summary.hpp"
#include "relay/recording_inbox.hpp"

namespace vigil::services {
namespace {

using authsvc::Caller;
using authsvc::CallerKind;

// Records read to find the node's host name in the first event.
constexpr int kHostnameScanRecords = 64;

// Whether c sees every recording (the roles allow `session` verb), false
// when only their own; the audited refusal for callers that see none.
Result<bool> sees_all(authsvc::AuthService& service, const Caller& c, std::string_view verb,
                      std::string_view action) {
  switch (c.kind) {
    case CallerKind::admin: return true;
    case CallerKind::user: return c.checker().can("session", verb);
    case CallerKind::anonymous:
      return service.refuse(c, action,
                            Error::of(Errc::unauthenticated,
                                      "recordings need a login: run vsh login first"));
    case CallerKind::node:
    case CallerKind::proxy:
      return service.refuse(
          c, action,
          Error::of(Errc::permission_denied,
                    "a " + std::string(authsvc::caller_kind_name(c.kind)) +
                        " identity reads no recordings; use a user's login (vsh) or vigilctl"));
  }
  return Error::of(Errc::internal, "unknown caller");
}

// A recording wherever it is: in the store, or still arriving (staged).
Result<std::unique_ptr<recording::RecordingSource>> open_any(recording::RecordingStore& store,
                                                             relay::RecordingInbox& inbox,
                                                             const std::string& sid) {
  auto source = store.open(sid);
  if (source || source.error().kind() != Errc::not_found) return source;
  auto staged = inbox.open_in_progress(sid);
  if (staged || staged.error().kind() != Errc::not_found) return staged;
  return store.open(sid);  // moved into the store meanwhile
}

// The node's host name as the recording's first event names it.
std::string hostname_of(recording::RecordingReader& reader) {
  recording::Record r;
  for (int i = 0; i < kHostnameScanRecords && reader.next(r); ++i) {
    if (r.type != recording::RecordType::event) continue;
    auto j = nlohmann::json::parse(r.data, nullptr, false);
    if (j.is_object() && j.contains("server_hostname") && j["server_hostname"].is_string())
      return j["server_hostname"].get<std::string>().substr(0, 256);
    return {};
  }
  return {};
}

// A decimal number in [min, max], or nullopt.
std::optional<uint64_t> number(const std::string& text, uint64_t min, uint64_t max) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || v < min || v > max)
    return std::nullopt;
  return v;
}

struct Listed {
  int64_t start_ns = 0;
  std::string sid;
  std::string error;  // the recording could not be opened: why
};

// Newest first; ties by sid, descending, so the order is total.
bool before(const Listed& a, const Listed& b) {
  if (a.start_ns != b.start_ns) return a.start_ns > b.start_ns;
  return a.sid > b.sid;
}

std::string key_of(const Listed& l) { return std::to_string(l.start_ns) + "_" + l.sid; }

Result<Listed> parse_key(const std::string& key) {
  auto bad = Error::of(Errc::invalid_argument,
                       "after: give the \"next\" value of the previous page unchanged");
  auto sep = key.find('_');
  if (sep == std::string::npos || sep == 0) return bad;
  int64_t start = 0;
  auto [p, ec] = std::from_chars(key.data(), key.data() + sep, start);
  if (ec != std::errc() || p != key.data() + sep) return bad;
  std::string sid = key.substr(sep + 1);
  if (!is_session_uuid(sid)) return bad;
  return Listed{start, sid, {}};
}

Result<api::Reply> list(authsvc::AuthService& service, recording::RecordingStore& store,
                        relay::RecordingInbox& inbox, const api::Request& q) {
  auto c = service.caller(q.peer);
  if (!c) return c.error();
  auto all = sees_all(service, *c, "list", "list recordings");
  if (!all) return all.error();
  std::string user = q.query_value("user").value_or("");
  if (!*all) {
    if (!user.empty() && user != c->name)
      return service.refuse(
          *c, "list recordings",
          Error::of(Errc::permission_denied,
                    "you may list only your own recordings (user=" + c->name +
                        "); others' need a role that allows session list, like auditor"));
    user = c->name;
  }
  size_t limit = kDefaultListLimit;
  if (auto v = q.query_value("limit")) {
    auto n = number(*v, 1, kMaxListLimit);
    if (!n)
      return Error::of(Errc::invalid_argument,
                       "limit: give a number from 1 to " + std::to_string(kMaxListLimit));
    limit = *n;
  }
  std::optional<Listed> after;
  if (auto v = q.query_value("after")) {
    auto k = parse_key(*v);
    if (!k) return k.error();
    after = std::move(*k);
  }

  // Every recording's header (the user and start), then the page.
  std::vector<std::string> sids;
  auto stored = store.list();
  if (!stored) return stored.error();
  for (const auto& info : *stored) sids.push_back(info.sid);
  auto arriving = inbox.in_progress();
  if (!arriving) return arriving.error();
  sids.insert(sids.end(), arriving->begin(), arriving->end());
  std::set<std::string> seen;
  std::vector<Listed> items;
  for (const auto& sid : sids) {
    if (!is_session_uuid(sid) || !seen.insert(sid).second) continue;
    auto source = open_any(store, inbox, sid);
    if (!source) {
      if (source.error().kind() == Errc::not_found) continue;  // gone meanwhile
      return source.error();
    }
    auto reader = recording::RecordingReader::open(std::move(*source));
    if (!reader) {
      // Whose it is cannot be told: shown only to those who see all.
      if (*all && user.empty()) items.push_back({0, sid, reader.error().message});
      continue;
    }
    if (!user.empty() && reader->header().user != user) continue;
    items.push_back({reader->header().start_ns, sid, {}});
  }
  std::sort(items.begin(), items.end(), before);

  // The page: the items after the key, at most limit; the continuation is
  // the page's last item when more follow.
  std::vector<const Listed*> page;
  std::string next;
  for (const auto& item : items) {
    if (after && !before(*after, item)) continue;
    if (page.size() == limit) {
      next = key_of(*page.back());
      break;
    }
    page.push_back(&item);
  }
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const Listed* item : page) {
    nlohmann::ordered_json j;
    if (!item->error.empty()) {
      j["sid"] = item->sid;
      j["error"] = item->error;
      rows.push_back(std::move(j));
      continue;
    }
    // The host name from the first events, then the summary: two readers,
    // each one chunk in memory at a time.
    auto first = open_any(store, inbox, item->sid);
    if (!first) continue;  // gone meanwhile
    const uint64_t bytes = (*first)->info().bytes;
    auto head_reader = recording::RecordingReader::open(std::move(*first));
    if (!head_reader) continue;
    std::string hostname = hostname_of(*head_reader);
    auto again = open_any(store, inbox, item->sid);
    if (!again) continue;
    auto reader = recording::RecordingReader::open(std::move(*again));
    if (!reader) continue;
    recording::Summary s = recording::summarize(*reader);
    recording::append_listing_fields(j, s);
    j["sid"] = item->sid;  // what GET /v1/recordings/:sid takes
    j["server_hostname"] = hostname;
    j["end"] = audit::format_time(s.end_ns);
    j["bytes"] = bytes;
    rows.push_back(std::move(j));
  }
  // Ordered: each row's fields in the order `vigil recordings` prints them.
  nlohmann::ordered_json body;
  body["recordings"] = std::move(rows);
  body["next"] = next;
  return api::Reply::bytes(body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace),
                           "application/json");
}

// The address without its port: each HTTP connection of one player has a
// port of its own.
std::string address_ip(const std::string& address) {
  if (!address.empty() && address.front() == '[') return address.substr(0, address.find(']') + 1);
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || address.find(':') != colon) return address;
  return address.substr(0, colon);
}

Result<api::Reply> read(authsvc::AuthService& service, recording::RecordingStore& store,
                        relay::RecordingInbox& inbox, PlaybackAudit& playback_audit,
                        const api::Request& q) {
  auto c = service.caller(q.peer);
  if (!c) return c.error();
  auto all = sees_all(service, *c, "read", "play recording");
  if (!all) return all.error();
  const std::string& sid = q.param("sid");
  if (!is_session_uuid(sid))
    return Error::of(Errc::invalid_argument,
                     "\"" + sid.substr(0, 64) +
                         "\" is not a session id: give the session's UUID, e.g. "
                         "9b825e22-744d-4130-94c5-dea49198ae3d, as `vsh recordings ls` lists it");
  uint64_t offset = 0;
  size_t length = kMaxReadBytes;
  if (auto v = q.query_value("offset")) {
    auto n = number(*v, 0, uint64_t{INT64_MAX});
    if (!n) return Error::of(Errc::invalid_argument, "offset: give a byte offset, 0 or more");
    offset = *n;
  }
  if (auto v = q.query_value("length")) {
    auto n = number(*v, 1, kMaxReadBytes);
    if (!n)
      return Error::of(Errc::invalid_argument,
                       "length: give a number of bytes from 1 to " + std::to_string(kMaxReadBytes));
    length = *n;
  }
  auto source = open_any(store, inbox, sid);
  if (!source) {
    if (source.error().kind() == Errc::not_found)
      return Error::of(Errc::not_found, "no recording of session " + sid +
                                            " in the cluster (`vsh recordings ls` lists them)");
    return source.error();
  }
  const recording::RecordingInfo info = (*source)->info();
  std::string bytes(length, '\0');
  size_t got = 0;
  while (got < length) {
    auto n = (*source)->read_at(offset + got, bytes.data() + got, length - got);
    if (!n) return n.error();
    if (*n == 0) break;
    got += *n;
  }
  bytes.resize(got);
  // Whose it is, from the same bytes' header.
  auto reader = recording::RecordingReader::open(std::move(*source));
  if (!*all) {
    if (!reader)
      return service.refuse(*c, "play recording",
                            Error::of(Errc::permission_denied,
                                      "the recording of session " + sid +
                                          " cannot be read to tell whose it is; ask an auditor"));
    if (reader->header().user != c->name)
      return service.refuse(
          *c, "play recording",
          Error::of(Errc::permission_denied,
                    "session " + sid + " is not one of yours (" + c->name +
                        "): you may play only your own sessions; others' need a role that "
                        "allows session read, like auditor"));
  }
  if (auto r = playback_audit.played(c->name, sid, c->address); !r) return r.error();
  api::Reply reply = api::Reply::bytes(std::move(bytes));
  reply.headers.emplace_back(kRecordingBytesHeader, std::to_string(info.bytes));
  reply.headers.emplace_back(kRecordingStatusHeader, std::string(recording::status_name(info.status)));
  return reply;
}

}  // namespace

PlaybackAudit::PlaybackAudit(auditlog::Emitter& audit, std::string cluster_name, Clock realtime_ns,
                             Clock monotonic_ns)
    : audit_(audit),
      cluster_(std::move(cluster_name)),
      realtime_ns_(std::move(realtime_ns)),
      monotonic_ns_(std::move(monotonic_ns)) {}

Result<void> PlaybackAudit::played(const std::string& user, const std::string& sid,
                                   const std::string& remote_addr) {
  const std::string key = user + '\0' + sid + '\0' + address_ip(remote_addr);
  const int64_t window = std::chrono::nanoseconds(kPlaybackAuditWindow).count();
  // Held while the event is written: two workers serving the same reader
  // at once write one event, not two.
  std::lock_guard lock(mu_);
  const int64_t now = monotonic_ns_();
  if (auto it = last_.find(key); it != last_.end() && now - it->second < window) return {};
  nlohmann::json e = nlohmann::json::object();
  e["event"] = "session.recording.access";
  e["code"] = "T2012I";
  e["user"] = user;
  e["sid"] = sid;
  e["addr.remote"] = remote_addr;
  e["cluster_name"] = cluster_;
  e["time"] = audit::format_time(realtime_ns_());
  e["uid"] = audit::new_uuid();
  std::string line = e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  if (auto r = audit_.emit(line, auditlog::Durability::sync); !r) {
    log::error("recordings: the audit log could not record " + line.substr(0, line.size() - 1) +
               ": " + r.error().message);
    return Error::of(Errc::unavailable,
                     "the auth service cannot write its audit log (" + r.error().message +
                         "), so it serves no recording it could not record as "
                         "session.recording.access; an administrator must repair the audit "
                         "log's storage, then retry");
  }
  ++written_;
  // Bounded: the expired go first, then the oldest.
  if (last_.size() >= kPlaybackAuditMemory) {
    std::erase_if(last_, [&](const auto& kv) { return now - kv.second >= window; });
    while (last_.size() >= kPlaybackAuditMemory)
      last_.erase(std::min_element(last_.begin(), last_.end(), [](const auto& a, const auto& b) {
        return a.second < b.second;
      }));
  }
  last_[key] = now;
  return {};
}

bool is_session_uuid(const std::string& sid) {
  if (sid.size() != 36) return false;
  for (size_t i = 0; i < sid.size(); ++i) {
    const char ch = sid[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (ch != '-') return false;
    } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
      return false;
    }
  }
  return true;
}

void add_recording_routes(api::Router& router, authsvc::AuthService& service,
                          recording::RecordingStore& store, relay::RecordingInbox& inbox,
                          PlaybackAudit& playback_audit) {
  auto* svc = &service;
  auto* st = &store;
  auto* in = &inbox;
  auto* pa = &playback_audit;
  router.add("GET", "/v1/recordings",
             [svc, st, in](const api::Request& q) { return list(*svc, *st, *in, q); });
  router.add("GET", "/v1/recordings/:sid",
             [svc, st, in, pa](const api::Request& q) { return read(*svc, *st, *in, *pa, q); });
}

}  // namespace vigil::services
