// Resource files (roles, users) through cluster::parse_resources(): the
// bounds checker, yaml-cpp, the strict schema and every value check; what
// an editor will send the auth service.
//
// Properties: an error names the file and a line ("fuzz.yaml:N: ...") and
// stays short; a role that loads prints (YAML and JSON) and reads back the
// same, and its values obey the checks.
#include <cstdint>
#include <string>
#include <string_view>

#include "check.hpp"
#include "cluster/format.hpp"
#include "cluster/parse.hpp"
#include "cluster/roles.hpp"

using namespace vigil::cluster;
using vigil::fuzz::kMaxMessage;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view data(reinterpret_cast<const char*>(bytes), size);
  auto all = parse_resources(data, "fuzz.yaml");
  if (!all) {
    const std::string& message = all.error().message;
    FUZZ_CHECK(message.starts_with("fuzz.yaml:"), "an error names the file: " + message.substr(0, 300));
    FUZZ_CHECK(message.size() <= kMaxMessage, "an error stays short");
    return 0;
  }
  for (const Resource& resource : all.value()) {
    if (const Role* role = std::get_if<Role>(&resource)) {
      FUZZ_CHECK(is_valid_name(role->name), "role name");
      for (const auto& [key, values] : role->allow.node_labels)
        FUZZ_CHECK(!values.empty() && (key != "*" || values == std::vector<std::string>{"*"}),
                   "selector");
      for (Format f : {Format::yaml, Format::json}) {
        std::string out = format(std::vector<Role>{*role}, f);
        if (f == Format::json) out = out.substr(out.find('{'), out.rfind('}') - out.find('{') + 1);
        auto back = parse_role(out, "out");
        FUZZ_CHECK(back.ok(), "a printed role reads back: " + (back ? "" : back.error().message));
        FUZZ_CHECK(back.value() == *role, "a printed role reads back the same:\n" + out);
      }
      AccessChecker checker({*role}, {{"logins", {"alice"}}});
      (void)checker.logins();
      (void)checker.check_login({{"env", "dev"}}, "alice");
    } else {
      const User& user = std::get<User>(resource);
      FUZZ_CHECK(is_valid_name(user.name), "user name");
    }
  }
  return 0;
}
