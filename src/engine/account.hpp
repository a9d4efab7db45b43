// Local accounts as login(1) sets them up: uid, gid, supplementary groups,
// home and shell. Looked up with the reentrant forms (getpwnam_r,
// getpwuid_r): the SSH node calls this from every connection's thread at
// once, and getpwnam's static buffer would hand one thread another's entry.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.hpp"

namespace vigil {

struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  std::string name;
  std::string home;
  std::string shell;
};

// The account `login`; an error when there is none or the lookup failed.
Result<Credentials> credentials_for(const std::string& login);
// The account of the calling process's real uid.
Result<Credentials> current_credentials();

}  // namespace vigil
