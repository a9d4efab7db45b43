#include "auditlog/search.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <compare>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

#include "audit/text_json.hpp"
#include "auditlog/base64url.hpp"
#include "auditlog/layout.hpp"
#include "auditlog/timeparse.hpp"
#include "common/fd.hpp"

namespace vigil::auditlog {
namespace {

using Json = nlohmann::json;

// A day file holds the lines emitted on its day (by the writer's clock).
// An event's "time" is when it happened: it may be up to this much earlier
// (delivery delays, a session.end summarising) or, with clocks that
// disagree a little, this much later. The day files searched are widened by
// these margins so that no event is missed at midnight.
constexpr int64_t kEventBeforeFileDayNs = kNsPerDay;
constexpr int64_t kEventAfterFileDayNs = 5 * 60 * int64_t{1'000'000'000};

constexpr size_t kMaxWarnings = 100;
constexpr size_t kReadChunk = 1 << 20;
constexpr size_t kMaxLine = 16 << 20;

// Where an event sits in the order of results; also what a continuation
// key holds.
struct Position {
  int64_t time_ns = 0;
  std::string file;  // "<uuid>/<day file>", relative to the log directory
  uint64_t offset = 0;
  auto operator<=>(const Position&) const = default;
};

constexpr std::string_view kKeyVersion = "1";

std::string encode_key(const Position& p) {
  return encode_base64url(std::string(kKeyVersion) + ":" + std::to_string(p.time_ns) + ":" +
                          std::to_string(p.offset) + ":" + p.file);
}

template <typename Int>
bool parse_int(std::string_view s, Int& out) {
  const auto res = std::from_chars(s.data(), s.data() + s.size(), out);
  return res.ec == std::errc() && res.ptr == s.data() + s.size();
}

std::optional<Position> decode_key(std::string_view key) {
  auto text = decode_base64url(key);
  if (!text) return std::nullopt;
  std::string_view s = *text;
  Position p;
  size_t a = s.find(':');
  size_t b = a == s.npos ? a : s.find(':', a + 1);
  size_t c = b == s.npos ? b : s.find(':', b + 1);
  if (c == s.npos || s.substr(0, a) != kKeyVersion ||
      !parse_int(s.substr(a + 1, b - a - 1), p.time_ns) ||
      !parse_int(s.substr(b + 1, c - b - 1), p.offset))
    return std::nullopt;
  p.file = s.substr(c + 1);
  return p;
}

// The top-level string fields a query looks at, read with a SAX parser:
// the whole line is checked to be JSON, but no document is built.
struct Fields {
  enum : unsigned { kTime = 1, kEvent = 2, kSid = 4, kUser = 8, kLogin = 16 };
  std::string time, event, sid, user, login;
  unsigned seen = 0;  // which of them held a string

  std::string* slot(std::string_view key, unsigned& bit) {
    if (key == "time") return bit = kTime, &time;
    if (key == "event") return bit = kEvent, &event;
    if (key == "sid") return bit = kSid, &sid;
    if (key == "user") return bit = kUser, &user;
    if (key == "login") return bit = kLogin, &login;
    return nullptr;
  }
};

class FieldReader {
 public:
  explicit FieldReader(Fields& f) : f_(f) {}

  bool null() { return value(); }
  bool boolean(bool) { return value(); }
  bool number_integer(Json::number_integer_t) { return value(); }
  bool number_unsigned(Json::number_unsigned_t) { return value(); }
  bool number_float(Json::number_float_t, const Json::string_t&) { return value(); }
  bool binary(Json::binary_t&) { return value(); }
  bool string(Json::string_t& s) {
    if (depth_ == 1 && target_) {
      target_->swap(s);
      f_.seen |= bit_;
    }
    return value();
  }
  bool start_object(std::size_t) {
    if (depth_ == 0) object_ = true;
    return enter();
  }
  bool key(Json::string_t& k) {
    if (depth_ == 1) target_ = f_.slot(k, bit_);
    return true;
  }
  bool end_object() { return --depth_, true; }
  bool start_array(std::size_t) { return enter(); }
  bool end_array() { return --depth_, true; }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception&) {
    error_at_ = position;
    return false;
  }

  bool object() const { return object_; }
  bool too_deep() const { return too_deep_; }
  size_t error_at() const { return error_at_; }

 private:
  // A line nested deeper than the text renderers accept is refused here,
  // at the first level too deep, so that no caller builds or renders it.
  bool enter() {
    if (++depth_ > audit::kMaxJsonDepth) {
      too_deep_ = true;
      return false;
    }
    return value();
  }

  // A value (or the start of a nested one) ends what the last key named.
  bool value() {
    target_ = nullptr;
    return true;
  }

  Fields& f_;
  int depth_ = 0;
  bool object_ = false;
  bool too_deep_ = false;
  std::string* target_ = nullptr;
  unsigned bit_ = 0;
  size_t error_at_ = 0;
};

// Reads one line's fields with the full parser; on failure returns why,
// for the warning.
std::optional<std::string> read_fields(std::string_view line, Fields& f) {
  f.seen = 0;
  FieldReader reader(f);
  const bool ok = Json::sax_parse(line.data(), line.data() + line.size(), &reader);
  if (reader.too_deep())
    return "nested deeper than " + std::to_string(audit::kMaxJsonDepth) + " levels";
  if (!ok) return "not JSON at byte " + std::to_string(reader.error_at());
  if (!reader.object()) return std::string("not a JSON object");
  if (!(f.seen & Fields::kTime)) return std::string("no \"time\" string");
  return std::nullopt;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// The fast path: finds the top-level string fields of an object by
// skipping strings and tracking nesting, without checking numbers or
// literals (several times faster than parsing). Most lines of a day file
// are ruled out by time or fields with this alone; a line that is kept is
// then checked with the full parser. Returns false when unsure (not an
// object, unterminated, an escape in a wanted value): the full parser
// decides those.
bool scan_fields(std::string_view s, Fields& f) {
  f.seen = 0;
  const char* p = s.data();
  const size_t n = s.size();
  size_t i = 0;
  while (i < n && is_space(p[i])) ++i;
  if (i == n || p[i] != '{') return false;
  ++i;
  int depth = 1;
  bool want_key = true;
  std::string* target = nullptr;
  unsigned bit = 0;
  while (i < n) {
    const char c = p[i];
    if (c == '"') {
      // The closing quote is the first one not escaped by an odd number of
      // backslashes.
      size_t end = i + 1;
      bool has_escape = false;
      for (;;) {
        const void* q = std::memchr(p + end, '"', n - end);
        if (!q) return false;
        const size_t quote = static_cast<const char*>(q) - p;
        size_t slashes = 0;
        while (quote - slashes > i + 1 && p[quote - slashes - 1] == '\\') ++slashes;
        has_escape |= std::memchr(p + end, '\\', quote - end) != nullptr;
        end = quote;
        if (slashes % 2 == 0) break;
        ++end;
      }
      const std::string_view str(p + i + 1, end - i - 1);
      if (depth == 1 && want_key) {
        target = f.slot(str, bit);
        want_key = false;
      } else if (depth == 1 && target) {
        if (has_escape) return false;
        target->assign(str);
        f.seen |= bit;
        target = nullptr;
      }
      i = end + 1;
      continue;
    }
    switch (c) {
      case '{':
      case '[':
        ++depth;
        target = nullptr;
        break;
      case '}':
      case ']':
        if (--depth == 0) {
          for (++i; i < n && is_space(p[i]);) ++i;
          return i == n;
        }
        break;
      case ',':
        if (depth == 1) want_key = true;
        break;
      case ':':
        break;
      default:
        if (!is_space(c)) target = nullptr;  // a value that is not a string
    }
    ++i;
  }
  return false;
}

// What a directory entry is, for a warning.
std::string file_kind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISDIR(mode)) return "a directory";
  return "not a regular file";
}

struct Hit {
  Position pos;
  std::string line;
};

}  // namespace

class Searcher {
 public:
  Searcher(const Query& q, std::optional<Position> after)
      : q_(q), after_(std::move(after)), from_(q.from_ns), to_(q.to_ns) {
    // Past the key, only later (or earlier) times can match.
    if (after_ && !q_.descending) from_ = std::max(from_, after_->time_ns);
    if (after_ && q_.descending) to_ = std::min(to_, after_->time_ns);
  }

  // Whether a day file can hold events of the query's range. The query's,
  // not the range narrowed by the continuation key: a day file may hold
  // events older than its margin (written late), and paging must return
  // exactly what one unlimited search does (found by fuzz/auditlog_search).
  bool wants_day(int64_t day) const {
    // 128 bits: the margins go past int64 for days at the ends of its range.
    const __int128 start = static_cast<__int128>(day) * kNsPerDay;
    return start - kEventBeforeFileDayNs <= q_.to_ns &&
           start + kNsPerDay + kEventAfterFileDayNs > q_.from_ns;
  }

  void scan_file(const std::string& path, const std::string& rel) {
    // A day file is a regular file the writer made. Anything else named
    // like one (a FIFO, a symbolic link to /dev/zero or to another file)
    // would block the search or read forever: it is reported and left out.
    // O_NONBLOCK: opening a FIFO does not wait for a writer; O_NOFOLLOW: a
    // symbolic link is not opened at all.
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW));
    if (!fd) {
      if (errno == ELOOP)
        warn("log/" + rel + ": skipped: a symbolic link, not a day file (remove it)");
      else
        warn("log/" + rel + ": cannot read: " + std::strerror(errno));
      return;
    }
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) {
      warn("log/" + rel + ": cannot read: " + std::strerror(errno));
      return;
    }
    if (!S_ISREG(st.st_mode)) {
      warn("log/" + rel + ": skipped: " + file_kind(st.st_mode) +
           ", not a day file (remove it)");
      return;
    }
    std::string buf;
    uint64_t buf_offset = 0;  // file offset of buf[0]
    line_ = 1;                // number of the line buf[0] is in
    bool overlong = false;    // inside a line too long to keep
    for (;;) {
      const size_t old = buf.size();
      buf.resize(old + kReadChunk);
      ssize_t n;
      do {
        n = ::read(fd.get(), buf.data() + old, kReadChunk);
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        warn("log/" + rel + ": read error at byte " + std::to_string(buf_offset + old) + ": " +
             std::strerror(errno));
        return;
      }
      buf.resize(old + static_cast<size_t>(n));
      if (n == 0) break;
      size_t start = 0;
      while (const void* nl = std::memchr(buf.data() + start, '\n', buf.size() - start)) {
        const size_t end = static_cast<const char*>(nl) - buf.data();
        if (overlong)
          overlong = false;  // the end of a line already reported
        else
          consider(std::string_view(buf).substr(start, end - start), rel, buf_offset + start);
        start = end + 1;
        ++line_;
      }
      // No event is this long: a file without newlines must not fill memory.
      if (buf.size() - start > kMaxLine) {
        if (!overlong) skip(rel, buf_offset + start, "skipped a line longer than 16 MiB");
        overlong = true;
        start = buf.size();
      }
      buf.erase(0, start);
      buf_offset += start;
    }
    if (!buf.empty() && !overlong)
      skip(rel, buf_offset,
           "ignored an unfinished last line (a write in progress, or a writer that died "
           "mid-write)");
  }

  // A line from a back end other than day files (LineSearch).
  void add(std::string_view line, const std::string& source, uint64_t position,
           uint64_t line_no) {
    line_ = line_no;
    consider(line, source, position);
  }
  void set_label_prefix(std::string prefix) { label_prefix_ = std::move(prefix); }
  size_t matched() const { return hits_.size(); }

  Page finish() {
    std::sort_heap(hits_.begin(), hits_.end(), before_);
    Page page;
    if (hits_.size() > q_.limit) {
      hits_.resize(q_.limit);
      page.next = encode_key(hits_.back().pos);
    }
    page.lines.reserve(hits_.size());
    for (Hit& h : hits_) page.lines.push_back(std::move(h.line));
    page.skipped = skipped_;
    page.warnings = std::move(warnings_);
    if (skipped_warnings_ > 0)
      page.warnings.push_back(std::to_string(skipped_warnings_) + " more warnings not listed");
    return page;
  }

 private:
  // The order of results: a comes before b in the page.
  struct Before {
    bool descending;
    bool operator()(const Hit& a, const Hit& b) const {
      return descending ? a.pos > b.pos : a.pos < b.pos;
    }
  };

  void consider(std::string_view line, const std::string& rel, uint64_t offset) {
    // The fast scan when it is sure, the full parser otherwise and for the
    // reason a line is corrupt.
    bool checked = false;
    std::optional<int64_t> time;
    if (scan_fields(line, fields_)) time = parse_time();
    if (!time) {
      if (auto why = read_fields(line, fields_)) {
        skip(rel, offset, "skipped a corrupt line (" + *why + ")");
        return;
      }
      checked = true;
      time = parse_time();
      if (!time) {
        skip(rel, offset, "skipped a corrupt line (\"time\" is not RFC 3339)");
        return;
      }
    }
    if (*time < from_ || *time > to_) return;
    if (!q_.types.empty() && (!(fields_.seen & Fields::kEvent) || !q_.types.count(fields_.event)))
      return;
    if (!matches(q_.sid, Fields::kSid, fields_.sid) ||
        !matches(q_.user, Fields::kUser, fields_.user) ||
        !matches(q_.login, Fields::kLogin, fields_.login))
      return;

    Hit hit{Position{*time, rel, offset}, {}};
    if (after_ && (q_.descending ? !(hit.pos < *after_) : !(*after_ < hit.pos))) return;
    // Keep the limit + 1 first events: the extra one tells whether there is
    // a next page. The heap's front is the last of those kept.
    const size_t keep = q_.limit + 1;
    if (hits_.size() == keep && !before_(hit, hits_.front())) return;
    // A line returned is a whole JSON object, not only well shaped.
    if (!checked) {
      if (auto why = read_fields(line, fields_)) {
        skip(rel, offset, "skipped a corrupt line (" + *why + ")");
        return;
      }
    }
    if (hits_.size() == keep) {
      std::pop_heap(hits_.begin(), hits_.end(), before_);
      hits_.pop_back();
    }
    hit.line = line;
    hits_.push_back(std::move(hit));
    std::push_heap(hits_.begin(), hits_.end(), before_);
  }

  std::optional<int64_t> parse_time() const {
    if (!(fields_.seen & Fields::kTime)) return std::nullopt;
    return parse_rfc3339(fields_.time);
  }

  bool matches(const std::string& wanted, unsigned bit, const std::string& value) const {
    return wanted.empty() || ((fields_.seen & bit) && value == wanted);
  }

  // "log/<uuid>/<day>.log:7 (byte 1234): why": the line, as an editor
  // counts it, and its offset for tools (tail -c +1235).
  void skip(const std::string& rel, uint64_t offset, const std::string& why) {
    ++skipped_;
    warn(label_prefix_ + rel + ":" + std::to_string(line_) + " (byte " +
         std::to_string(offset) + "): " + why);
  }

  void warn(std::string message) {
    if (warnings_.size() < kMaxWarnings)
      warnings_.push_back(std::move(message));
    else
      ++skipped_warnings_;
  }

  const Query q_;
  std::optional<Position> after_;
  std::string label_prefix_ = "log/";
  int64_t from_, to_;
  Before before_{q_.descending};
  Fields fields_;
  std::vector<Hit> hits_;  // a heap ordered by before_
  std::vector<std::string> warnings_;
  size_t skipped_warnings_ = 0;
  size_t skipped_ = 0;
  uint64_t line_ = 0;  // the line of the file being read that consider() is given
};

namespace {

bool is_directory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Entry names of a directory, sorted (a stable order for files and warnings).
Result<std::vector<std::string>> list_dir(const std::string& path) {
  DIR* dir = opendir(path.c_str());
  if (!dir) return Error::sys("cannot read " + path);
  std::vector<std::string> names;
  while (dirent* e = readdir(dir))
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

namespace {

Result<std::optional<Position>> check_query(const Query& query) {
  if (query.limit == 0) return Error{"limit must be at least 1", EINVAL};
  std::optional<Position> after;
  if (!query.after.empty()) {
    after = decode_key(query.after);
    if (!after)
      return Error{"\"" + query.after +
                       "\" is not a continuation key (give the one "
                       "the previous page returned)",
                   EINVAL};
  }
  return after;
}

}  // namespace

Result<LineSearch> LineSearch::begin(const Query& query, std::string label_prefix) {
  auto after = check_query(query);
  if (!after) return after.error();
  LineSearch s;
  s.searcher_ = std::make_unique<Searcher>(query, std::move(*after));
  s.searcher_->set_label_prefix(std::move(label_prefix));
  return s;
}

LineSearch::LineSearch() = default;
LineSearch::LineSearch(LineSearch&&) noexcept = default;
LineSearch& LineSearch::operator=(LineSearch&&) noexcept = default;
LineSearch::~LineSearch() = default;

void LineSearch::add(std::string_view line, const std::string& source, uint64_t position,
                     uint64_t line_no) {
  searcher_->add(line, source, position, line_no);
}

size_t LineSearch::matched() const { return searcher_->matched(); }

Page LineSearch::finish() { return searcher_->finish(); }

Result<IndexFields> index_fields(std::string_view line) {
  // The fast scan when it is sure (as search does); the full parser
  // otherwise, and for the reason a line is refused.
  Fields f;
  if (!scan_fields(line, f) || !(f.seen & Fields::kTime) || !parse_rfc3339(f.time))
    if (auto why = read_fields(line, f)) return Error::of(Errc::invalid_argument, *why);
  auto time = parse_rfc3339(f.time);
  if (!time) return Error::of(Errc::invalid_argument, "\"time\" is not RFC 3339");
  IndexFields out;
  out.time_ns = *time;
  if (f.seen & Fields::kEvent) out.event = std::move(f.event);
  if (f.seen & Fields::kSid) out.sid = std::move(f.sid);
  if (f.seen & Fields::kUser) out.user = std::move(f.user);
  if (f.seen & Fields::kLogin) out.login = std::move(f.login);
  return out;
}

Result<std::optional<KeyPosition>> continuation_position(const Query& query) {
  auto after = check_query(query);
  if (!after) return after.error();
  if (!*after) return std::optional<KeyPosition>();
  return std::optional<KeyPosition>(KeyPosition{(*after)->time_ns, (*after)->file, (*after)->offset});
}

Result<Page> search(const std::string& data_dir, const Query& query) {
  auto checked = check_query(query);
  if (!checked) return checked.error();
  std::optional<Position> after = std::move(*checked);
  const std::string dir = log_dir(data_dir);
  auto servers = list_dir(dir);
  if (!servers) {
    if (servers.error().err == ENOENT)
      return Error{"no audit log in " + dir + " (nothing recorded yet, or another data_dir?)",
                   ENOENT};
    return servers.error();
  }

  Searcher searcher(query, std::move(after));
  for (const std::string& server : *servers) {
    const std::string server_dir = dir + "/" + server;
    if (!is_directory(server_dir)) continue;  // events.log and other files
    auto files = list_dir(server_dir);
    if (!files) continue;
    for (const std::string& name : *files) {
      auto day = parse_day_file_name(name);
      if (!day || !searcher.wants_day(*day)) continue;
      searcher.scan_file(server_dir + "/" + name, server + "/" + name);
    }
  }
  return searcher.finish();
}

}  // namespace vigil::auditlog
