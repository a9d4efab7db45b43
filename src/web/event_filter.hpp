// The audit log's filters the page needs beyond auditlog::Query (issue 11
// §3), applied by GET /v1/events to each event of a page:
// - text: a case-sensitive substring of the event's command line (program
//   and argv joined by spaces, as the page shows it) or of one of its paths
//   (path, kernel_path, unix_path);
// - node: the event's server_hostname or server_id, exactly.
// Both at most kMaxFilterBytes. The route scans at most kMaxScannedPages
// pages of the log per call (each `limit` events) for matches and answers
// with the continuation key where it stopped: a page may hold fewer events
// than `limit` and still have a `next`.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

namespace vigil::web {

inline constexpr size_t kMaxFilterBytes = 1024;
inline constexpr size_t kMaxScannedPages = 20;

struct EventFilter {
  std::string text;
  std::string node;
  bool empty() const { return text.empty() && node.empty(); }
  bool matches(const nlohmann::json& event) const;
};

}  // namespace vigil::web
