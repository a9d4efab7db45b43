// Export to asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/),
// the format `asciinema play`, `asciinema cat` and asciinema-player read:
//   {"version":2,"width":80,"height":24,"timestamp":1688488940}
//   [0.125000,"o","$ ls\r\n"]
//   [2.500000,"r","120x40"]
// Times are seconds since the session start, never decreasing. Output data
// is valid UTF-8: a character split across records is carried to the next
// one, a byte that is not UTF-8 becomes U+FFFD. Audit events are left out.
#pragma once

#include <cstdint>
#include <string>

#include "recording/format.hpp"

namespace vigil::recording {

class AsciicastExport {
 public:
  explicit AsciicastExport(const Header& header) : header_(header) {}
  // Each call appends whole lines to `out`.
  void begin(std::string& out);
  void record(const Record& r, std::string& out);
  void finish(std::string& out);  // writes a tail no record completed

 private:
  void line(int64_t time_ns, char type, std::string_view data, std::string& out);

  Header header_;
  int64_t last_offset_ns_ = 0;
  int64_t last_time_ns_ = 0;
  std::string carry_;  // incomplete UTF-8 sequence from the previous output record
};

}  // namespace vigil::recording
