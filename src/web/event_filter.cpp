#include "web/event_filter.hpp"

namespace vigil::web {

namespace {

std::string string_field(const nlohmann::json& e, const char* key) {
  auto it = e.find(key);
  return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool text_matches(const nlohmann::json& e, const std::string& needle) {
  std::string line = string_field(e, "program");
  if (auto argv = e.find("argv"); argv != e.end() && argv->is_array())
    for (const auto& a : *argv)
      if (a.is_string()) line += " " + a.get<std::string>();
  if (line.find(needle) != std::string::npos) return true;
  for (const char* key : {"path", "kernel_path", "unix_path", "command"})
    if (string_field(e, key).find(needle) != std::string::npos) return true;
  return false;
}

}  // namespace

bool EventFilter::matches(const nlohmann::json& e) const {
  if (!e.is_object()) return false;
  if (!node.empty() && string_field(e, "server_hostname") != node && string_field(e, "server_id") != node)
    return false;
  if (!text.empty() && !text_matches(e, text)) return false;
  return true;
}

}  // namespace vigil::web
