#include "common/result.hpp"

namespace vigil {

std::string_view errc_name(Errc c) {
  switch (c) {
    case Errc::unspecified: return "unspecified";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::not_found: return "not_found";
    case Errc::already_exists: return "already_exists";
    case Errc::permission_denied: return "permission_denied";
    case Errc::unauthenticated: return "unauthenticated";
    case Errc::failed_precondition: return "failed_precondition";
    case Errc::resource_exhausted: return "resource_exhausted";
    case Errc::unavailable: return "unavailable";
    case Errc::deadline_exceeded: return "deadline_exceeded";
    case Errc::data_loss: return "data_loss";
    case Errc::internal: return "internal";
  }
  return "internal";
}

}  // namespace vigil
