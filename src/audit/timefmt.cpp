#include "audit/timefmt.hpp"

namespace vigil::audit {
namespace {

constexpr int64_t kNsPerSec = 1'000'000'000;
constexpr int64_t kSecPerDay = 86'400;

struct CivilTime {
  int64_t year;
  unsigned month, day, hour, minute, second;
  unsigned nanos;  // 0..999'999'999
};

// Floor division, so instants before the epoch land on the right day.
int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// Floor modulo: always in [0, b) for b > 0. Computed without multiplying
// back, which would overflow near INT64_MIN.
int64_t floor_mod(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return r < 0 ? r + b : r;
}

// Proleptic Gregorian date of a day count from 1970-01-01: Howard Hinnant's
// civil_from_days, which works in 400-year eras starting on March 1st so
// that the leap day falls at the end of each year.
CivilTime to_civil(int64_t ns) {
  const int64_t secs = floor_div(ns, kNsPerSec);
  const int64_t days = floor_div(secs, kSecPerDay);
  const int64_t sec_of_day = floor_mod(secs, kSecPerDay);

  const int64_t z = days + 719'468;  // days from 0000-03-01
  const int64_t era = floor_div(z, 146'097);
  const int64_t doe = z - era * 146'097;                                    // [0, 146096]
  const int64_t yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;  // [0, 399]
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);              // [0, 365]
  const int64_t mp = (5 * doy + 2) / 153;                                   // March = 0
  CivilTime t;
  t.day = static_cast<unsigned>(doy - (153 * mp + 2) / 5 + 1);
  t.month = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
  t.year = yoe + era * 400 + (t.month <= 2 ? 1 : 0);
  t.hour = static_cast<unsigned>(sec_of_day / 3600);
  t.minute = static_cast<unsigned>(sec_of_day / 60 % 60);
  t.second = static_cast<unsigned>(sec_of_day % 60);
  t.nanos = static_cast<unsigned>(floor_mod(ns, kNsPerSec));
  return t;
}

// Writes value as exactly `width` decimal digits, zero-padded on the left.
char* put_digits(char* w, uint64_t value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    w[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return w + width;
}

char* put_clock(char* w, const CivilTime& t) {
  w = put_digits(w, t.hour, 2);
  *w++ = ':';
  w = put_digits(w, t.minute, 2);
  *w++ = ':';
  return put_digits(w, t.second, 2);
}

}  // namespace

void append_time(std::string& out, int64_t ns) {
  // int64 nanoseconds span the years 1677..2262: always four year digits.
  constexpr size_t kLen = sizeof("YYYY-MM-DDTHH:MM:SS.uuuuuuZ") - 1;
  const CivilTime t = to_civil(ns);
  const size_t start = out.size();
  out.resize(start + kLen);
  char* w = out.data() + start;
  w = put_digits(w, static_cast<uint64_t>(t.year), 4);
  *w++ = '-';
  w = put_digits(w, t.month, 2);
  *w++ = '-';
  w = put_digits(w, t.day, 2);
  *w++ = 'T';
  w = put_clock(w, t);
  *w++ = '.';
  w = put_digits(w, t.nanos / 1000, 6);
  *w = 'Z';
}

std::string format_time(int64_t ns) {
  std::string out;
  append_time(out, ns);
  return out;
}

void append_clock_millis(std::string& out, int64_t ns) {
  constexpr size_t kLen = sizeof("HH:MM:SS.mmm") - 1;
  const CivilTime t = to_civil(ns);
  const size_t start = out.size();
  out.resize(start + kLen);
  char* w = put_clock(out.data() + start, t);
  *w++ = '.';
  put_digits(w, t.nanos / 1'000'000, 3);
}

}  // namespace vigil::audit
