// The server_id of this host: a UUID kept in <data_dir>/host_uuid, made on
// first use and then stable across runs (as Teleport's host_uuid file).
#pragma once

#include <string>

#include "common/result.hpp"

namespace vigil::audit {

Result<std::string> load_or_create_host_uuid(const std::string& data_dir);

}  // namespace vigil::audit
