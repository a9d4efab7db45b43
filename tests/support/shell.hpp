// Runs a shell command and returns its exit status and what it printed
// (stdout and stderr together). For tests that drive real tools
// (ssh-keygen, openssl) on files they made themselves.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace vigil::test {

struct ShellResult {
  int status = -1;  // exit status; -1 when it did not exit normally
  std::string output;
};

inline ShellResult shell(const std::string& command) {
  ShellResult r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace vigil::test
