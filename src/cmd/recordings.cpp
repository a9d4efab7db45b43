// vigil recordings: the sessions recorded in <data_dir>/log/records, newest
// first, as a table for people or as JSON lines for scripts.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "audit/text_quote.hpp"
#include "audit/timefmt.hpp"
#include "commands.hpp"
#include "recording/file_store.hpp"
#include "recording/store.hpp"
#include "recording/summary.hpp"

namespace vigil::cmd {
namespace {

struct RecordingsArgs {
  DataDirOptions data;
  std::string format = "text";
};

// A recording that could be read, or why not.
struct Entry {
  std::string path;
  std::optional<recording::Summary> summary;
  std::string error;
};

std::string status_of(const recording::Summary& s) {
  using Kind = recording::Damage::Kind;
  if (s.damage)
    return "damaged at offset " + std::to_string(s.damage.offset) +
           (s.damage.kind == Kind::truncated ? " (truncated)" : " (corrupt)");
  if (s.in_progress) return "in progress";
  if (!s.ended) return "interrupted";  // its writer died between two chunks
  return "ended";
}

// "45s", "12m05s", "3h02m10s"
std::string format_duration(int64_t ns) {
  const int64_t total = std::max<int64_t>(0, ns) / 1'000'000'000;
  const int64_t h = total / 3600, m = total / 60 % 60, s = total % 60;
  char buf[32];
  if (h)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", (long long)h, (long long)m, (long long)s);
  else if (m)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)m, (long long)s);
  else
    std::snprintf(buf, sizeof buf, "%llds", (long long)s);
  return buf;
}

// "2023-07-04 16:42:20Z"
std::string format_start(int64_t ns) {
  std::string t = audit::format_time(ns);  // 2023-07-04T16:42:20.540123Z
  t[10] = ' ';
  return t.substr(0, 19) + "Z";
}

// A cell of the table: the fields' rule (quoted when empty or holding a
// space), so a user name cannot shift the columns after it.
std::string cell(std::string_view s) {
  std::string out;
  audit::append_value(out, s);
  return out;
}

void print_table(const std::vector<Entry>& entries) {
  using Row = std::vector<std::string>;
  std::vector<Row> rows = {
      {"START (UTC)", "DURATION", "SID", "USER", "LOGIN", "TYPE", "ENHANCED", "EVENTS", "STATUS"}};
  for (const auto& e : entries) {
    if (!e.summary) continue;
    const auto& s = *e.summary;
    const auto& h = s.header;
    rows.push_back({format_start(h.start_ns), format_duration(s.duration_ns()), cell(h.sid),
                    cell(h.user), cell(h.login),
                    h.interactive ? "interactive" : "command", s.enhanced ? "yes" : "no",
                    "command=" + std::to_string(s.events[Kind::command]) +
                        " disk=" + std::to_string(s.events[Kind::disk]) +
                        " network=" + std::to_string(s.events[Kind::network]),
                    status_of(s)});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

void print_json(const std::vector<Entry>& entries) {
  using Json = nlohmann::ordered_json;
  for (const auto& e : entries) {
    Json j;
    j["path"] = e.path;
    if (!e.summary) {
      j["error"] = e.error;
    } else {
      const auto& s = *e.summary;
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
        j["damage"] = {
            {"kind", s.damage.kind == recording::Damage::Kind::truncated ? "truncated" : "corrupt"},
            {"offset", s.damage.offset},
            {"reason", s.damage.reason}};
    }
    std::printf("%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
  }
}

int list(const RecordingsArgs& args) {
  auto cfg = args.data.resolve();
  if (!cfg) {
    std::fprintf(stderr, "vigil recordings: %s\n", cfg.error().message.c_str());
    return kVigilFailed;
  }
  recording::FileRecordingStore store(cfg->data_dir);
  auto listed = store.list();
  if (!listed) {
    std::fprintf(stderr, "vigil recordings: %s\n", listed.error().message.c_str());
    return 1;
  }
  std::vector<Entry> entries;
  for (const auto& info : *listed) {
    auto s = recording::summarize(store, info.sid);
    if (s)
      entries.push_back({info.name, std::move(*s), {}});
    else
      entries.push_back({info.name, std::nullopt, s.error().message});
  }
  // Newest first; files that are not readable recordings last.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (!a.summary || !b.summary) return a.summary.has_value() && !b.summary;
    return a.summary->header.start_ns > b.summary->header.start_ns;
  });

  if (args.format == "json") {
    print_json(entries);
  } else if (entries.empty()) {
    std::printf("no recordings in %s\n", store.where().c_str());
  } else {
    print_table(entries);
  }
  std::fflush(stdout);
  if (args.format == "text")
    for (const auto& e : entries)
      if (!e.summary) std::fprintf(stderr, "vigil recordings: %s\n", e.error.c_str());
  return 0;
}

}  // namespace

Subcommand add_recordings(CLI::App& app) {
  auto args = std::make_shared<RecordingsArgs>();
  auto* sub = app.add_subcommand("recordings", "list recorded sessions, newest first");
  sub->add_option("--format", args->format, "text (a table) or json (one object a line)")
      ->check(CLI::IsMember({"text", "json"}));
  args->data.add_to(sub);
  return {sub, [args] { return list(*args); }};
}

}  // namespace vigil::cmd
