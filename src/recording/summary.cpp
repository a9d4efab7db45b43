#include "recording/summary.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "audit/text_json.hpp"

namespace vigil::recording {

Result<Summary> summarize(const std::string& path) {
  auto reader = RecordingReader::open(path);
  if (!reader) return reader.error();
  return summarize(*reader);
}

Result<Summary> summarize(RecordingStore& store, const std::string& sid) {
  auto reader = RecordingReader::open(store, sid);
  if (!reader) return reader.error();
  return summarize(*reader);
}

Summary summarize(RecordingReader& reader_ref) {
  RecordingReader* reader = &reader_ref;
  Summary s;
  s.path = reader->path();
  s.header = reader->header();
  s.in_progress = reader->writer_active();
  s.status = reader->status();
  s.end_ns = s.header.start_ns;
  KindCounts counted;
  Record r;
  while (reader->next(r)) {
    s.end_ns = std::max(s.end_ns, r.time_ns);
    if (r.type == RecordType::output) s.output_bytes += r.data.size();
    if (r.type != RecordType::event) continue;
    // Events are only looked at here, not rendered, but their JSON is the
    // session's: one nested too deep is left out like one that is not JSON.
    auto parsed = audit::parse_json_bounded(r.data);
    if (!parsed) continue;
    const nlohmann::json& ev = *parsed;
    auto name = ev.is_object() ? ev.find("event") : ev.end();
    if (name == ev.end() || !name->is_string()) continue;
    const auto& event = name->get_ref<const std::string&>();
    if (event == "session.end") {
      s.ended = true;
      s.end_ns = r.time_ns;
      auto enhanced = ev.find("enhanced_recording");
      s.enhanced = enhanced != ev.end() && enhanced->is_boolean() && enhanced->get<bool>();
      if (auto counts = ev.find("recorded_events"); counts != ev.end() && counts->is_object())
        for (Kind k : {Kind::command, Kind::disk, Kind::network}) {
          auto n = counts->find(std::string(kind_name(k)));
          s.events[k] = n != counts->end() && n->is_number_unsigned() ? n->get<uint64_t>() : 0;
        }
    } else if (event.rfind("session.", 0) == 0) {
      if (auto kind = parse_kind(std::string_view(event).substr(8))) ++counted[*kind];
    }
  }
  s.damage = reader->damage();
  if (!s.ended) {
    s.events = counted;
    s.enhanced = counted.total() > 0;
  }
  return s;
}

}  // namespace vigil::recording
