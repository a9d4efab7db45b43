// What a config file can make the loader do is bounded (config.hpp): its
// size, how deep it nests, how long its names and values are, and what the
// "did you mean" suggestion costs. Each bound is an error naming file:line.
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <string>

#include "config/config.hpp"
#include "config/values.hpp"

// Allocations made while `counting` is on: how many, and the largest. The
// suggestion's cost is asserted through them, not through time.
namespace {
bool counting = false;
size_t allocations = 0;
size_t largest_allocation = 0;
}  // namespace

void* operator new(size_t n) {
  if (counting) {
    ++allocations;
    largest_allocation = std::max(largest_allocation, n);
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace vigil::config {
namespace {

struct CountAllocations {
  CountAllocations() {
    allocations = 0;
    largest_allocation = 0;
    counting = true;
  }
  ~CountAllocations() { counting = false; }
};

std::string error_of(std::string_view yaml) {
  Result<Config> config = parse(yaml, "node.yaml");
  return config ? "(parsed without error)" : config.error().message;
}

TEST(ConfigLimits, EditDistanceNeedsMemoryForTheShorterWordOnly) {
  const std::string long_word(1 << 20, 'x');
  size_t distance;
  {
    CountAllocations count;
    distance = edit_distance(long_word, "enhanced_recording");
  }
  EXPECT_EQ(distance, long_word.size()) << "18 substitutions, the rest deletions";
  EXPECT_LE(largest_allocation, (sizeof "enhanced_recording") * sizeof(size_t))
      << "a row as long as the shorter word, not a table of the longer one";
  EXPECT_LE(allocations, 3u);
  EXPECT_EQ(edit_distance("enhanced_recording", long_word), distance) << "either order";
}

TEST(ConfigLimits, SuggestionsSkipWordsOfAnotherLength) {
  const std::string long_word(16 << 20, 'e');
  const std::vector<std::string_view> keys = {"enabled", "enhanced_recording", "listen_addr"};
  std::optional<std::string_view> suggestion;
  {
    CountAllocations count;
    suggestion = closest(long_word, keys);
  }
  EXPECT_EQ(suggestion, std::nullopt);
  EXPECT_EQ(allocations, 0u) << "no distance is computed for a word 2+ letters longer";
  // Within two letters of length, suggestions still work as before.
  EXPECT_EQ(closest("enabledxx", {"enabled"}), "enabled");
  EXPECT_EQ(closest("enabledxxx", {"enabled"}), std::nullopt);
}

TEST(ConfigLimits, FileSize) {
  std::string text = "# a comment line of forty bytes........\n";
  std::string big;
  while (big.size() + text.size() <= kMaxFileBytes) big += text;
  ASSERT_TRUE(parse(big, "node.yaml")) << "a file of comments up to the bound reads";
  big.append(kMaxFileBytes + 1 - big.size(), '#');
  const std::string line = std::to_string(kMaxFileBytes / text.size() + 1);
  EXPECT_EQ(error_of(big), "node.yaml:" + line + ": the file goes past 1048576 bytes here, and " +
                               "a node file is a few hundred: is this the right file?");
}

TEST(ConfigLimits, LoadFileReadsNoMoreThanTheBound) {
  // Endless: read whole, this would never end nor fit in memory.
  Result<Config> config = load_file("/dev/zero");
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().message,
            "/dev/zero:1: the file goes past 1048576 bytes here, and a node file is a few "
            "hundred: is this the right file?");
}

TEST(ConfigLimits, HugeUnknownFieldNameIsRefusedByItsLength) {
  // The report: a 16 MB unknown word took 1.7 GB in "did you mean". Under
  // the file bound, a long name is refused before any suggestion is sought.
  // (Written as an explicit "? key": YAML itself refuses plain keys over 1024.)
  const std::string name(512 << 10, 'k');
  EXPECT_EQ(error_of("ssh_service:\n  ? " + name + "\n  : 1\n"),
            "node.yaml:2: a field name of 524288 bytes; names are at most 256 (is a value "
            "missing its key, or a quote its end?)");
  EXPECT_EQ(error_of("ssh_service:\n  " + std::string(2000, 'k') + ": 1\n"),
            "node.yaml:2:2003: YAML syntax error: illegal map value; check the indentation, "
            "quotes and brackets here");
  const std::string allowed(256, 'k');
  EXPECT_EQ(error_of("ssh_service:\n  " + allowed + ": 1\n"),
            "node.yaml:2: unknown field ssh_service." + allowed +
                "; expected one of: enabled, listen_addr, enhanced_recording, "
                "trusted_user_ca_keys, default_recording_kinds, login_grace_time");
}

TEST(ConfigLimits, ValueLength) {
  const std::string path = "/" + std::string(kMaxValueBytes - 1, 'd');
  Result<Config> config = parse("teleport:\n  data_dir: " + path + "\n", "node.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->data_dir, path);
  EXPECT_EQ(error_of("teleport:\n  data_dir: " + path + "d\n"),
            "node.yaml:2: a value of 4097 bytes; values are at most 4096 (paths, names, "
            "addresses): is a quote missing its end?");
  EXPECT_EQ(error_of("teleport:\n  nodename: [a, \"" + std::string(5000, 'n') + "\"]\n"),
            "node.yaml:2: a value of 5000 bytes; values are at most 4096 (paths, names, "
            "addresses): is a quote missing its end?")
      << "values inside lists too";
}

TEST(ConfigLimits, ErrorsQuoteOnlyTheStartOfALongValue) {
  const std::string value(3000, 'y');
  EXPECT_EQ(error_of("ssh_service:\n  enabled: " + value + "\n"),
            "node.yaml:2: ssh_service.enabled: expected true or false, got \"" +
                std::string(80, 'y') + "...\" (3000 bytes)");
}

TEST(ConfigLimits, Nesting) {
  std::string deep;
  for (int level = 0; level < kMaxNesting; ++level)
    deep += std::string(2 * level, ' ') + "k" + std::to_string(level) + ":\n";
  EXPECT_EQ(error_of(deep), "node.yaml:1: unknown field k0; expected one of: version, teleport, "
                            "vigil, proxy_service, auth_service, ssh_service, audit")
      << kMaxNesting << " levels are read (and refused for what they say)";
  deep += std::string(2 * kMaxNesting, ' ') + "too_deep: {}\n";
  EXPECT_EQ(error_of(deep),
            "node.yaml:" + std::to_string(kMaxNesting + 1) +
                ": maps and lists nest more than 16 levels deep here; a node file needs 3 (the "
                "file, a section, a subsection or list): check the indentation and brackets");
  // Brackets nest without taking lines; far past yaml-cpp's own limit too.
  EXPECT_EQ(error_of("ssh_service: " + std::string(100000, '[') + "\n"),
            "node.yaml:1: maps and lists nest more than 16 levels deep here; a node file needs 3 "
            "(the file, a section, a subsection or list): check the indentation and brackets");
}

TEST(ConfigLimits, StrayCommaIsAnErrorNotAHang) {
  // yaml-cpp 0.7 starts empty documents at a stray ',' forever (found by
  // fuzz/config_fuzz.cpp; the reproducer is in fuzz/regressions/config/).
  const std::string stuck =
      ": YAML syntax error: the text cannot be read past here; check the brackets, quotes and "
      "stray characters on this line";
  EXPECT_EQ(error_of(",\n"), "node.yaml:1" + stuck);
  EXPECT_EQ(error_of("- enabled\n,\n"), "node.yaml:2" + stuck);
  EXPECT_EQ(error_of("version: v3\n---\n, {f}]=\n"), "node.yaml:3" + stuck);
}

TEST(ConfigLimits, AliasesAreNotExpanded) {
  // Each level names the one before nine times: expanded, 9^12 nodes.
  std::string yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 12; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    yaml += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev;
    for (int j = 1; j < 9; ++j) yaml += ", " + prev;
    yaml += "]\n";
  }
  EXPECT_EQ(error_of(yaml), "node.yaml:1: unknown field a0; expected one of: version, teleport, "
                            "vigil, proxy_service, auth_service, ssh_service, audit");
  EXPECT_EQ(error_of("ssh_service:\n  trusted_user_ca_keys: &l [*l]\n"),
            "node.yaml:2: ssh_service.trusted_user_ca_keys[0]: expected a file path, got a list")
      << "a list that holds itself is read one level deep";
}

}  // namespace
}  // namespace vigil::config
