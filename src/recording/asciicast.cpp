#include "recording/asciicast.hpp"

#include <algorithm>

#include "audit/json.hpp"
#include "recording/time_offset.hpp"
#include "recording/utf8_tail.hpp"

namespace vigil::recording {
namespace {

// Seconds with microsecond digits, e.g. 12.000250, from a non-negative ns count.
void append_seconds(std::string& out, int64_t ns) {
  const int64_t micros = ns / 1000;
  std::string frac = std::to_string(micros % 1'000'000);
  out += std::to_string(micros / 1'000'000);
  out += '.';
  out.append(6 - frac.size(), '0');
  out += frac;
}

}  // namespace

void AsciicastExport::begin(std::string& out) {
  // Floor division: the integer second the session started in.
  const int64_t s = header_.start_ns / 1'000'000'000 - (header_.start_ns % 1'000'000'000 < 0);
  out += "{\"version\":2,\"width\":" + std::to_string(header_.cols) +
         ",\"height\":" + std::to_string(header_.rows) + ",\"timestamp\":" + std::to_string(s) +
         "}\n";
  last_time_ns_ = header_.start_ns;
}

void AsciicastExport::line(int64_t time_ns, char type, std::string_view data, std::string& out) {
  // asciinema plays events in file order and sleeps for the gaps: a late
  // record is shown at once rather than with a negative delay.
  last_offset_ns_ = std::max(last_offset_ns_, offset_ns(time_ns, header_.start_ns));
  last_time_ns_ = std::max(last_time_ns_, time_ns);
  out += '[';
  append_seconds(out, last_offset_ns_);
  out += ",\"";
  out += type;
  out += "\",";
  audit::append_json_string(out, data);
  out += "]\n";
}

void AsciicastExport::record(const Record& r, std::string& out) {
  if (r.type == RecordType::resize) {
    line(r.time_ns, 'r', std::to_string(r.cols) + "x" + std::to_string(r.rows), out);
  } else if (r.type == RecordType::output) {
    std::string bytes = std::move(carry_);
    bytes += r.data;
    const size_t tail = incomplete_utf8_tail(bytes);
    carry_ = bytes.substr(bytes.size() - tail);
    bytes.resize(bytes.size() - tail);
    if (!bytes.empty()) line(r.time_ns, 'o', bytes, out);
  }
}

void AsciicastExport::finish(std::string& out) {
  if (!carry_.empty()) line(last_time_ns_, 'o', carry_, out);  // becomes U+FFFD
  carry_.clear();
}

}  // namespace vigil::recording
