#include "recording/listing.hpp"

#include <algorithm>
#include <cstdio>

#include "audit/text_quote.hpp"
#include "audit/timefmt.hpp"

namespace vigil::recording {
namespace {

using Json = nlohmann::ordered_json;

// A field of a row, or `fallback` when missing or of another type.
std::string text_of(const Json& row, const char* key) {
  auto it = row.find(key);
  return it != row.end() && it->is_string() ? it->get<std::string>() : std::string();
}
int64_t number_of(const Json& row, const char* key) {
  auto it = row.find(key);
  if (it == row.end() || !it->is_number()) return 0;
  if (it->is_number_unsigned())
    return static_cast<int64_t>(std::min<uint64_t>(it->get<uint64_t>(), INT64_MAX));
  if (it->is_number_integer()) return it->get<int64_t>();
  return 0;
}
bool flag_of(const Json& row, const char* key) {
  auto it = row.find(key);
  return it != row.end() && it->is_boolean() && it->get<bool>();
}

// A cell of the table: the fields' rule (quoted when empty or holding a
// space), so a user name cannot shift the columns after it.
std::string cell(std::string_view s) {
  std::string out;
  audit::append_value(out, s);
  return out;
}

// "45s", "12m05s", "3h02m10s"
std::string format_duration_ms(int64_t ms) {
  const int64_t total = std::max<int64_t>(0, ms) / 1000;
  const int64_t h = total / 3600, m = total / 60 % 60, s = total % 60;
  char buf[64];
  if (h)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", (long long)h, (long long)m, (long long)s);
  else if (m)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)m, (long long)s);
  else
    std::snprintf(buf, sizeof buf, "%llds", (long long)s);
  return buf;
}

// "2023-07-04T16:42:20.540123Z" -> "2023-07-04 16:42:20Z"; anything else
// (a row from elsewhere) as a quoted cell.
std::string format_start(std::string t) {
  bool plain = t.size() >= 19 && t[10] == 'T';
  for (size_t i = 0; plain && i < 19; ++i)
    plain = i == 10 || (t[i] >= '0' && t[i] <= '9') || t[i] == '-' || t[i] == ':';
  if (!plain) return cell(t);
  t[10] = ' ';
  return t.substr(0, 19) + "Z";
}

std::string status_text(const Json& row) {
  std::string status = text_of(row, "status");
  if (status == "ended" || status == "in progress" || status == "interrupted") return status;
  if (status != "damaged") return cell(status);
  auto d = row.find("damage");
  if (d == row.end() || !d->is_object()) return "damaged";
  return "damaged at offset " + std::to_string(number_of(*d, "offset")) +
         (text_of(*d, "kind") == "truncated" ? " (truncated)" : " (corrupt)");
}

}  // namespace

void append_listing_fields(Json& j, const Summary& s) {
  j["sid"] = s.header.sid;
  j["server_id"] = s.header.server_id;
  j["user"] = s.header.user;
  j["login"] = s.header.login;
  j["start"] = audit::format_time(s.header.start_ns);
  j["duration_ms"] = s.duration_ns() / 1'000'000;
  j["interactive"] = s.header.interactive;
  j["enhanced"] = s.enhanced;
  j["events"] = {{"command", s.events[Kind::command]},
                 {"disk", s.events[Kind::disk]},
                 {"network", s.events[Kind::network]}};
  j["output_bytes"] = s.output_bytes;
  j["status"] = s.damage        ? "damaged"
                : s.in_progress ? "in progress"
                : s.ended       ? "ended"
                                : "interrupted";
  if (s.damage)
    j["damage"] = {{"kind", s.damage.kind == Damage::Kind::truncated ? "truncated" : "corrupt"},
                   {"offset", s.damage.offset},
                   {"reason", s.damage.reason}};
}

std::string listing_table(const std::vector<Json>& entries) {
  using Row = std::vector<std::string>;
  std::vector<Row> rows = {
      {"START (UTC)", "DURATION", "SID", "USER", "LOGIN", "TYPE", "ENHANCED", "EVENTS", "STATUS"}};
  for (const auto& e : entries) {
    if (!e.is_object() || e.contains("error")) continue;
    const Json empty = Json::object();
    auto ev = e.find("events");
    const Json& events = ev != e.end() && ev->is_object() ? *ev : empty;
    rows.push_back({format_start(text_of(e, "start")),
                    format_duration_ms(number_of(e, "duration_ms")), cell(text_of(e, "sid")),
                    cell(text_of(e, "user")), cell(text_of(e, "login")),
                    flag_of(e, "interactive") ? "interactive" : "command",
                    flag_of(e, "enhanced") ? "yes" : "no",
                    "command=" + std::to_string(number_of(events, "command")) +
                        " disk=" + std::to_string(number_of(events, "disk")) +
                        " network=" + std::to_string(number_of(events, "network")),
                    status_text(e)});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  std::string out;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) out.append(width[i] - row[i].size() + 2, ' ');
    }
    out += '\n';
  }
  return out;
}

}  // namespace vigil::recording
