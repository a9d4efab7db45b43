#include "event/event.hpp"

namespace vigil {

std::string_view kind_name(Kind k) {
  switch (k) {
    case Kind::command: return "command";
    case Kind::disk: return "disk";
    case Kind::network: return "network";
  }
  return "unknown";
}

std::optional<Kind> parse_kind(std::string_view name) {
  for (int i = 0; i < kKindCount; ++i) {
    auto k = static_cast<Kind>(i);
    if (kind_name(k) == name) return k;
  }
  return std::nullopt;
}

std::optional<KindSet> KindSet::parse(std::string_view list, std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<KindSet> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  KindSet set;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view item = list.substr(pos, comma - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    auto k = parse_kind(item);
    if (!k)
      return fail("unknown event kind '" + std::string(item) +
                  "': use a comma-separated list of command, disk, network");
    if (set.has(*k)) return fail("event kind '" + std::string(item) + "' is listed twice");
    set.add(*k);
    pos = comma + 1;
  }
  if (set.empty()) return fail("no event kind given: use command, disk and/or network");
  return set;
}

std::string KindSet::to_string() const {
  std::string out;
  for (int i = 0; i < kKindCount; ++i) {
    auto k = static_cast<Kind>(i);
    if (!has(k)) continue;
    if (!out.empty()) out += ',';
    out += kind_name(k);
  }
  return out;
}

}  // namespace vigil
