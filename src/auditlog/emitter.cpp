#include "auditlog/emitter.hpp"

#include <cstring>
#include <string>

namespace vigil::auditlog {

Result<void> check_event_line(std::string_view line) {
  if (line.empty()) return Error{"audit event refused: empty line", EINVAL};
  if (line.size() > kMaxEventBytes)
    return Error{"audit event refused: " + std::to_string(line.size()) +
                     " bytes, more than the " + std::to_string(kMaxEventBytes >> 20) +
                     " MiB an event may have (cut the event's fields)",
                 EINVAL};
  if (line.back() != '\n')
    return Error{"audit event refused: the line does not end with a newline", EINVAL};
  if (std::memchr(line.data(), '\n', line.size() - 1) != nullptr)
    return Error{"audit event refused: a newline inside the line (one event a line)", EINVAL};
  if (line.size() < 3 || line.front() != '{' || line[line.size() - 2] != '}')
    return Error{"audit event refused: the line is not a JSON object ({...})", EINVAL};
  return {};
}

}  // namespace vigil::auditlog
