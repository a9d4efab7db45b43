// Random (version 4) UUIDs, the "uid" of every audit event, lowercase:
// "9b825e22-744d-4130-94c5-dea49198ae3d".
#pragma once

#include <string>

namespace vigil::audit {

void append_uuid(std::string& out);
std::string new_uuid();

}  // namespace vigil::audit
