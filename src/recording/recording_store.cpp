#include "recording/recording_store.hpp"

namespace vigil::recording {

std::string_view status_name(Status s) {
  switch (s) {
    case Status::unknown: return "unknown";
    case Status::in_progress: return "in_progress";
    case Status::complete: return "complete";
    case Status::interrupted: return "interrupted";
  }
  return "unknown";
}

bool is_valid_sid(std::string_view sid) {
  if (sid.empty() || sid.size() > 200 || sid == "." || sid == "..") return false;
  for (unsigned char c : sid)
    if (c == '/' || c < 0x20 || c == 0x7f) return false;
  return true;
}

Result<std::string> RecordingStore::resolve(const std::string& name) {
  if (name.empty()) return Error::of(Errc::invalid_argument, "give a session id or a recording file");
  if (is_valid_sid(name)) {
    auto exact = info(name);
    if (exact) return name;
    if (exact.error().kind() != Errc::not_found) return exact.error();
  }
  auto all = list();
  if (!all) return all.error();
  std::vector<std::string> matches;
  for (const auto& r : *all)
    if (r.sid.compare(0, name.size(), name) == 0) matches.push_back(r.sid);
  if (matches.size() == 1) return matches.front();
  if (matches.empty())
    return Error::of(Errc::not_found, "no recording of session " + name + " in " + where() +
                                          " (list them with `vigil recordings`)");
  return Error::of(Errc::invalid_argument, "session id " + name + " is ambiguous: " +
                                               std::to_string(matches.size()) +
                                               " recordings start with it");
}

}  // namespace vigil::recording
