#include "auditlog/timeparse.hpp"

#include <string>

namespace vigil::auditlog {
namespace {

constexpr int64_t kNsPerSec = 1'000'000'000;

// The years int64 nanoseconds since 1970 reach (in part: to_ns checks the rest).
constexpr int64_t kMinYear = 1677;
constexpr int64_t kMaxYear = 2262;

bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. Years
// are counted from March, so the leap day is the last day of its year and
// the day of the year follows from the month by a linear formula.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  if (m <= 2) --y;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t year_of_era = y - era * 400;                             // [0, 399]
  const int64_t month_from_march = m > 2 ? m - 3 : m + 9;                // [0, 11]
  const int64_t day_of_year = (153 * month_from_march + 2) / 5 + d - 1;  // [0, 365]
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146'097 + day_of_era - 719'468;  // 719468: days from 0000-03-01 to 1970-01-01
}

// Reads exactly n decimal digits at s[pos..]; advances pos.
std::optional<int64_t> digits(std::string_view s, size_t& pos, size_t n) {
  if (pos + n > s.size()) return std::nullopt;
  int64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = s[pos + i];
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  pos += n;
  return v;
}

bool expect(std::string_view s, size_t& pos, char c) {
  if (pos >= s.size() || s[pos] != c) return false;
  ++pos;
  return true;
}

// "YYYY-MM-DD" at s[pos..]: its day number.
std::optional<int64_t> read_date(std::string_view s, size_t& pos) {
  auto y = digits(s, pos, 4);
  if (!y || !expect(s, pos, '-')) return std::nullopt;
  auto m = digits(s, pos, 2);
  if (!m || !expect(s, pos, '-')) return std::nullopt;
  auto d = digits(s, pos, 2);
  if (!d) return std::nullopt;
  if (*y < kMinYear || *y > kMaxYear || *m < 1 || *m > 12 || *d < 1 ||
      *d > days_in_month(*y, static_cast<unsigned>(*m)))
    return std::nullopt;
  return days_from_civil(*y, static_cast<unsigned>(*m), static_cast<unsigned>(*d));
}

// Seconds since the epoch to ns, refusing what int64 cannot hold.
std::optional<int64_t> to_ns(int64_t secs, int64_t nanos) {
  int64_t ns;
  if (__builtin_mul_overflow(secs, kNsPerSec, &ns) || __builtin_add_overflow(ns, nanos, &ns))
    return std::nullopt;
  return ns;
}

}  // namespace

std::optional<int64_t> parse_date(std::string_view s) {
  size_t pos = 0;
  auto day = read_date(s, pos);
  if (!day || pos != s.size()) return std::nullopt;
  return to_ns(*day * 86'400, 0);
}

std::optional<int64_t> parse_rfc3339(std::string_view s) {
  size_t pos = 0;
  auto day = read_date(s, pos);
  if (!day || pos >= s.size() || (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' '))
    return std::nullopt;
  ++pos;
  auto hh = digits(s, pos, 2);
  if (!hh || !expect(s, pos, ':')) return std::nullopt;
  auto mm = digits(s, pos, 2);
  if (!mm || !expect(s, pos, ':')) return std::nullopt;
  auto ss = digits(s, pos, 2);
  // Second 60 is a leap second: it reads as the first second of the next minute.
  if (!ss || *hh > 23 || *mm > 59 || *ss > 60) return std::nullopt;
  int64_t nanos = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t n = 0;
    for (; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos, ++n)
      if (n < 9) nanos = nanos * 10 + (s[pos] - '0');
    if (n == 0) return std::nullopt;
    for (; n < 9; ++n) nanos *= 10;
  }
  int64_t offset_secs = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int sign = s[pos++] == '-' ? -1 : 1;
    auto oh = digits(s, pos, 2);
    if (!oh || !expect(s, pos, ':')) return std::nullopt;
    auto om = digits(s, pos, 2);
    if (!om || *oh > 23 || *om > 59) return std::nullopt;
    offset_secs = sign * (*oh * 3600 + *om * 60);
  } else {
    return std::nullopt;  // RFC 3339 requires the offset
  }
  if (pos != s.size()) return std::nullopt;
  // A local time at +02:00 is two hours ahead of UTC: subtract the offset.
  return to_ns(*day * 86'400 + *hh * 3600 + *mm * 60 + *ss - offset_secs, nanos);
}

Result<int64_t> parse_time_arg(std::string_view s, int64_t now_ns) {
  if (s == "now") return now_ns;
  if (s.size() >= 3 && s[0] == '-' && s[1] >= '0' && s[1] <= '9') {
    int64_t n = 0;
    size_t pos = 1;
    for (; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos) {
      if (n > 1'000'000'000) return Error{"\"" + std::string(s) + "\": too far back"};
      n = n * 10 + (s[pos] - '0');
    }
    if (pos + 1 == s.size()) {
      int64_t unit_secs = 0;
      switch (s[pos]) {
        case 's':
          unit_secs = 1;
          break;
        case 'm':
          unit_secs = 60;
          break;
        case 'h':
          unit_secs = 3600;
          break;
        case 'd':
          unit_secs = 86'400;
          break;
        case 'w':
          unit_secs = 7 * 86'400;
          break;
      }
      int64_t back_ns, ns;
      if (unit_secs != 0 && !__builtin_mul_overflow(n * unit_secs, kNsPerSec, &back_ns) &&
          !__builtin_sub_overflow(now_ns, back_ns, &ns))
        return ns;
    }
  }
  if (auto ns = parse_date(s)) return *ns;
  if (auto ns = parse_rfc3339(s)) return *ns;
  return Error{"\"" + std::string(s) +
               "\" is not a time: give RFC 3339 (2026-11-27T10:00:00Z, fractional seconds and "
               "+hh:mm offsets allowed), a date (2026-11-27, its midnight UTC), \"now\", or a "
               "time before now (-30s, -15m, -2h, -7d, -1w)"};
}

}  // namespace vigil::auditlog
