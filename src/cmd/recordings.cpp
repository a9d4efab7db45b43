// vigil recordings: the sessions recorded in <data_dir>/log/records, newest
// first, as a table for people or as JSON lines for scripts.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "recording/file_store.hpp"
#include "recording/listing.hpp"
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

// The rows `vigil recordings --format json` prints, in the table's order;
// the same objects `vsh recordings ls` gets from the auth service.
std::vector<nlohmann::ordered_json> rows_of(const std::vector<Entry>& entries) {
  std::vector<nlohmann::ordered_json> rows;
  for (const auto& e : entries) {
    nlohmann::ordered_json j;
    j["path"] = e.path;
    if (!e.summary)
      j["error"] = e.error;
    else
      recording::append_listing_fields(j, *e.summary);
    rows.push_back(std::move(j));
  }
  return rows;
}

void print_json(const std::vector<Entry>& entries) {
  using Json = nlohmann::ordered_json;
  for (const auto& j : rows_of(entries))
    std::printf("%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
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
    std::fputs(recording::listing_table(rows_of(entries)).c_str(), stdout);
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
