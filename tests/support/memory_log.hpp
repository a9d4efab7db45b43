// An audit log in memory for tests of what a producer writes: every line it
// got, parsed, with the durability asked for. Thread-safe (the engine's
// threads write too).
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "auditlog/emitter.hpp"

namespace vigil::test {

class MemoryLog : public auditlog::Emitter {
 public:
  using Json = nlohmann::ordered_json;
  struct Line {
    Json event;
    auditlog::Durability durability;
  };

  Result<void> emit(std::string_view json_line, auditlog::Durability durability) override {
    if (auto r = auditlog::check_event_line(json_line); !r) return r;
    std::lock_guard lock(mu_);
    lines_.push_back({Json::parse(json_line), durability});
    return {};
  }
  Result<void> flush() override { return {}; }

  std::vector<Line> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }
  std::vector<std::string> types() const {
    std::vector<std::string> out;
    for (const auto& l : lines()) out.push_back(l.event.value("event", ""));
    return out;
  }
  std::vector<Json> of(const std::string& type) const {
    std::vector<Json> out;
    for (const auto& l : lines())
      if (l.event.value("event", "") == type) out.push_back(l.event);
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Line> lines_;
};

}  // namespace vigil::test
