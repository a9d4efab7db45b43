#include "relay/wire.hpp"

#include <charconv>
#include <set>

#include "audit/text_json.hpp"
#include "recording/recording_store.hpp"

namespace vigil::relay {
namespace {

using Json = nlohmann::json;

Error bad(std::string what) {
  return Error::of(Errc::invalid_argument, "relay: " + std::move(what));
}

Result<Json> parse_object(std::string_view text, size_t max_bytes, std::string_view what) {
  if (text.size() > max_bytes)
    return bad(std::string(what) + " of " + std::to_string(text.size()) + " bytes, more than the " +
               std::to_string(max_bytes) + " allowed (send fewer events at a time)");
  std::string why;
  auto value = audit::parse_json_bounded(text, &why);
  if (!value) return bad(std::string(what) + " is not valid: " + why);
  if (!value->is_object()) return bad(std::string(what) + " must be a JSON object");
  return std::move(*value);
}

// Every key of `object` is one of `known`.
Result<void> only_keys(const Json& object, std::initializer_list<std::string_view> known,
                       std::string_view what) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    bool found = false;
    for (std::string_view k : known) found = found || it.key() == k;
    if (!found) {
      std::string list;
      for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return bad(std::string(what) + ": unknown field \"" + it.key() + "\" (fields: " + list + ")");
    }
  }
  return {};
}

Result<uint64_t> get_u64(const Json& object, const char* key, std::string_view what) {
  auto it = object.find(key);
  if (it == object.end()) return bad(std::string(what) + ": \"" + key + "\" is missing");
  if (!it->is_number_unsigned())
    return bad(std::string(what) + ": \"" + key + "\" must be a non-negative integer");
  return it->get<uint64_t>();
}

Result<std::string> get_name(const Json& object, const char* key, std::string_view what) {
  auto it = object.find(key);
  if (it == object.end()) return std::string();
  if (!it->is_string()) return bad(std::string(what) + ": \"" + key + "\" must be a string");
  std::string s = it->get<std::string>();
  if (s.size() > kMaxNameBytes)
    return bad(std::string(what) + ": \"" + key + "\" is longer than " +
               std::to_string(kMaxNameBytes) + " bytes");
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f)
      return bad(std::string(what) + ": \"" + key + "\" holds a control character");
  return s;
}

}  // namespace

size_t Batch::event_bytes() const {
  size_t n = 0;
  for (const auto& e : events) n += e.size();
  return n;
}

std::string to_json(const Batch& batch) {
  Json j = Json::object();
  j["server_id"] = batch.server_id;
  j["server_hostname"] = batch.server_hostname;
  j["first_seq"] = batch.first_seq;
  j["events"] = batch.events;
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string to_json(const Ack& ack) { return Json{{"acked_seq", ack.acked_seq}}.dump(); }

std::string to_json(const RecordingState& state) {
  return Json{{"bytes", state.bytes}, {"complete", state.complete}}.dump();
}

Result<Batch> batch_from_json(std::string_view text) {
  auto j = parse_object(text, kMaxBatchJsonBytes, "batch");
  if (!j) return j.error();
  return batch_from_value(*j);
}

Result<Batch> batch_from_value(const Json& j) {
  constexpr std::string_view what = "batch";
  if (!j.is_object()) return bad("batch must be a JSON object");
  if (auto r = only_keys(j, {"server_id", "server_hostname", "first_seq", "events"}, what); !r)
    return r.error();
  Batch b;
  auto id = get_name(j, "server_id", what);
  if (!id) return id.error();
  b.server_id = std::move(*id);
  auto host = get_name(j, "server_hostname", what);
  if (!host) return host.error();
  b.server_hostname = std::move(*host);
  auto first = get_u64(j, "first_seq", what);
  if (!first) return first.error();
  if (*first == 0) return bad("batch: \"first_seq\" starts at 1");
  b.first_seq = *first;
  auto events = j.find("events");
  if (events == j.end() || !events->is_array())
    return bad("batch: \"events\" must be an array of strings (one JSON event each)");
  if (events->empty()) return bad("batch: \"events\" is empty (send at least one event)");
  if (events->size() > kMaxBatchEvents)
    return bad("batch: " + std::to_string(events->size()) + " events, more than the " +
               std::to_string(kMaxBatchEvents) + " a batch may carry");
  if (b.first_seq > UINT64_MAX - events->size()) return bad("batch: \"first_seq\" is too large");
  size_t bytes = 0;
  b.events.reserve(events->size());
  for (size_t i = 0; i < events->size(); ++i) {
    const Json& e = (*events)[i];
    if (!e.is_string())
      return bad("batch: events[" + std::to_string(i) + "] must be a string (one JSON event)");
    const auto& s = e.get_ref<const std::string&>();
    bytes += s.size();
    if (bytes > kMaxBatchBytes)
      return bad("batch: the events hold more than " + std::to_string(kMaxBatchBytes >> 20) +
                 " MiB (send fewer at a time)");
    b.events.push_back(s);
  }
  return b;
}

std::string to_lines(const Batch& batch) {
  Json head = Json::object();
  head["server_id"] = batch.server_id;
  head["server_hostname"] = batch.server_hostname;
  head["first_seq"] = batch.first_seq;
  std::string out = head.dump(-1, ' ', false, Json::error_handler_t::replace);
  out += '\n';
  out.reserve(out.size() + batch.event_bytes() + batch.events.size());
  for (const auto& e : batch.events) {
    out += e;
    out += '\n';
  }
  return out;
}

Result<Batch> batch_from_lines(std::string_view text) {
  if (text.size() > kMaxBatchBytes + 4096)
    return bad("batch of " + std::to_string(text.size()) + " bytes, more than the " +
               std::to_string(kMaxBatchBytes + 4096) + " allowed (send fewer events at a time)");
  const size_t head_end = text.find('\n');
  if (head_end == std::string_view::npos || head_end > 4096)
    return bad("batch: the first line must be the header object (at most 4096 bytes), '\\n' ended");
  auto head = parse_object(text.substr(0, head_end), 4096, "batch header");
  if (!head) return head.error();
  if (head->contains("events")) return bad("batch header: \"events\" are the lines after it");
  (*head)["events"] = Json::array({""});  // checked below, line by line
  auto b = batch_from_value(*head);
  if (!b) return b.error();
  b->events.clear();
  size_t at = head_end + 1;
  while (at < text.size()) {
    const size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos) return bad("batch: the last event has no '\\n' (cut short?)");
    if (nl == at) return bad("batch: event " + std::to_string(b->events.size()) + " is an empty line");
    if (b->events.size() == kMaxBatchEvents)
      return bad("batch: more than the " + std::to_string(kMaxBatchEvents) +
                 " events a batch may carry");
    b->events.emplace_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  if (b->events.empty()) return bad("batch: no events after the header (send at least one event)");
  if (b->first_seq > UINT64_MAX - b->events.size()) return bad("batch: \"first_seq\" is too large");
  return std::move(*b);
}

Result<Ack> ack_from_json(std::string_view text) {
  auto j = parse_object(text, 4096, "ack");
  if (!j) return j.error();
  if (auto r = only_keys(*j, {"acked_seq"}, "ack"); !r) return r.error();
  auto seq = get_u64(*j, "acked_seq", "ack");
  if (!seq) return seq.error();
  return Ack{*seq};
}

Result<RecordingState> recording_state_from_json(std::string_view text) {
  auto j = parse_object(text, 4096, "recording state");
  if (!j) return j.error();
  if (auto r = only_keys(*j, {"bytes", "complete"}, "recording state"); !r) return r.error();
  auto bytes = get_u64(*j, "bytes", "recording state");
  if (!bytes) return bytes.error();
  auto complete = j->find("complete");
  if (complete == j->end() || !complete->is_boolean())
    return bad("recording state: \"complete\" must be true or false");
  return RecordingState{*bytes, complete->get<bool>()};
}

Result<ChunkMeta> chunk_meta_from(std::string_view sid, std::string_view offset,
                                  std::string_view final) {
  ChunkMeta m;
  if (!recording::is_valid_sid(sid))
    return bad("recording chunk: \"" + std::string(sid.substr(0, 64)) +
               "\" is not a session id (no '/', control characters, \".\" or \"..\"; at most "
               "200 bytes)");
  m.sid = std::string(sid);
  if (offset.empty() || offset.size() > 20)
    return bad("recording chunk: offset must be a decimal byte offset");
  auto [p, ec] = std::from_chars(offset.data(), offset.data() + offset.size(), m.offset);
  if (ec != std::errc() || p != offset.data() + offset.size())
    return bad("recording chunk: offset \"" + std::string(offset) +
               "\" must be a decimal byte offset");
  if (final.empty() || final == "false") m.final = false;
  else if (final == "true") m.final = true;
  else return bad("recording chunk: final must be true or false");
  return m;
}

}  // namespace vigil::relay
