// The audit log search (src/auditlog/search.cpp) over a day file whose
// bytes are the input's, with the query and continuation key taken from it
// too: the fast field scan, the full JSON check, RFC 3339 times, the heap of
// hits and the continuation keys.
//
// Input: one byte of query choices, a continuation key up to the first
// '\n' (often empty), then the day file's bytes.
//   bits 0-2  limit - 1;  bit 3 newest first;  bit 4 only session.command;
//   bit 5     only user "alice";  bits 6-7 time range (open, from, to, both)
// Properties: a page never holds more than the limit, and, without a key
// from the input, following `next` page after page returns exactly the
// events one unlimited search returns, in the same order.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "auditlog/layout.hpp"
#include "auditlog/search.hpp"
#include "check.hpp"

using namespace vigil::auditlog;

namespace {

constexpr int64_t kDay = 20'784;  // 2026-11-27
constexpr int64_t kNoon = kDay * kNsPerDay + kNsPerDay / 2;

struct Fixture {
  std::string data_dir;
  std::string day_file;
};

// Never destroyed: the exit handler below still needs it after statics go.
const Fixture& fixture() {
  static const Fixture& f = *[] {
    // Memory-backed when the host has it: every input rewrites the day file.
    const char* base = getenv("TMPDIR");
    if (!base || !*base) base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string tmpl = std::string(base) + "/vigil-fuzz-log-XXXXXX";
    FUZZ_CHECK(mkdtemp(tmpl.data()), "mkdtemp");
    auto* f = new Fixture;
    f->data_dir = tmpl;
    const std::string server = log_dir(f->data_dir) + "/11111111-2222-4333-8444-555555555555";
    std::filesystem::create_directories(server);
    f->day_file = server + "/" + day_file_name(kDay);
    // Removed at exit, so that runs leave no directories behind.
    std::atexit([] { std::filesystem::remove_all(fixture().data_dir); });
    return f;
  }();
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 1) return 0;
  const Fixture& f = fixture();
  const uint8_t choices = bytes[0];
  std::string_view rest(reinterpret_cast<const char*>(bytes + 1), size - 1);
  const size_t nl = rest.find('\n');
  const std::string_view key = nl == std::string_view::npos ? std::string_view() : rest.substr(0, nl);
  const std::string_view content = nl == std::string_view::npos ? rest : rest.substr(nl + 1);
  {
    std::ofstream out(f.day_file, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    FUZZ_CHECK(out.good(), "cannot write the day file");
  }

  Query q;
  q.limit = (choices & 7) + 1;
  q.descending = choices & 8;
  if (choices & 16) q.types = {"session.command"};
  if (choices & 32) q.user = "alice";
  if (choices & 64) q.from_ns = kNoon - 3'600'000'000'000;
  if (choices & 128) q.to_ns = kNoon + 3'600'000'000'000;
  q.after = key;

  auto page = search(f.data_dir, q);
  if (!page) {
    FUZZ_CHECK(!key.empty(), "only a bad key fails this query: " + page.error().message);
    return 0;
  }
  FUZZ_CHECK(page->lines.size() <= q.limit, "a page holds at most limit events");
  FUZZ_CHECK(page->next.empty() || page->lines.size() == q.limit, "a next page only after a full one");
  if (!key.empty()) return 0;

  Query all = q;
  all.limit = content.size() + 1;  // more than the lines the file can hold
  auto everything = search(f.data_dir, all);
  FUZZ_CHECK(everything && everything->next.empty(), "one unlimited page holds every event");
  std::vector<std::string> paged = page->lines;
  std::string next = page->next;
  while (!next.empty()) {
    FUZZ_CHECK(paged.size() <= everything->lines.size(), "paging returns more than there is");
    Query more = q;
    more.after = next;
    auto p = search(f.data_dir, more);
    FUZZ_CHECK(p, "a key the search gave is accepted: " + (p ? "" : p.error().message));
    FUZZ_CHECK(!p->lines.empty() || p->next.empty(), "paging makes progress");
    paged.insert(paged.end(), p->lines.begin(), p->lines.end());
    next = p->next;
  }
  FUZZ_CHECK(paged == everything->lines,
             "pages must add up to the unlimited search: " + std::to_string(paged.size()) +
                 " paged, " + std::to_string(everything->lines.size()) + " at once");
  return 0;
}
