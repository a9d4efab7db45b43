// What a fuzz target asserts beyond "does not crash": a property of the
// parser that must hold for every input. A violation aborts, which libFuzzer
// reports as a crash and saves the input, like a sanitizer finding.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond, what)                                                       \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      const std::string fuzz_what_(what);                                            \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", __FILE__, __LINE__,  \
                   #cond, fuzz_what_.c_str());                                       \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

namespace vigil::fuzz {

// Error messages are shown to people and logged: whatever the input, one
// must stay readable (no input echoed whole).
inline constexpr size_t kMaxMessage = 4096;

}  // namespace vigil::fuzz
