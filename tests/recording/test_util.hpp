// Helpers shared by the recording tests (tests/unit/recording_*_test.cpp
// and tests/recording/): a scratch directory, files, whole recordings.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "recording/reader.hpp"
#include "recording/writer.hpp"
#include "../support/temp_dir.hpp"

namespace vigil::recording::testing {

// 2023-07-04T16:42:20.54Z, the guide's sample time.
inline constexpr int64_t kStart = 1'688'488'940'540'000'000;
inline constexpr int64_t kMs = 1'000'000;
inline constexpr int64_t kSec = 1'000'000'000;

using test::TempDir;

inline Header test_header(int64_t start = kStart) {
  Header h;
  h.sid = "86aca627-971d-4883-854d-d309ba04c658";
  h.server_id = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
  h.user = "alice@goteleport.com";
  h.login = "ec2-user";
  h.start_ns = start;
  h.cols = 80;
  h.rows = 24;
  h.interactive = true;
  return h;
}

// Options for deterministic chunks: no background flusher, no size trigger
// unless asked, and every record settled at once.
inline WriterOptions manual_options(size_t chunk_bytes = 1 << 30) {
  WriterOptions o;
  o.chunk_bytes = chunk_bytes;
  o.flush_interval = std::chrono::milliseconds(0);
  o.reorder_window_ns = 0;
  o.clock = [] { return int64_t{1} << 62; };  // far after every test time
  return o;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

struct ReadBack {
  Header header;
  std::vector<Record> records;
  Damage damage;
  bool writer_active = false;
};

inline ReadBack read_all(const std::string& path) {
  auto reader = RecordingReader::open(path);
  EXPECT_TRUE(reader.ok()) << (reader ? "" : reader.error().message);
  ReadBack out;
  if (!reader) return out;
  out.header = reader->header();
  out.writer_active = reader->writer_active();
  Record r;
  while (reader->next(r)) out.records.push_back(r);
  out.damage = reader->damage();
  return out;
}

inline Record output(int64_t t, std::string data) {
  return {RecordType::output, t, std::move(data), 0, 0};
}
inline Record resize(int64_t t, uint16_t cols, uint16_t rows) {
  return {RecordType::resize, t, {}, cols, rows};
}
inline Record event(int64_t t, std::string json) {
  return {RecordType::event, t, std::move(json), 0, 0};
}

inline void append(RecordingWriter& w, const Record& r) {
  switch (r.type) {
    case RecordType::output:
      w.output(r.time_ns, r.data);
      break;
    case RecordType::resize:
      w.resize(r.time_ns, r.cols, r.rows);
      break;
    case RecordType::event:
      w.event(r.time_ns, r.data);
      break;
  }
}

// A recording made of the given records; returns its path.
inline std::string make_recording(const TempDir& dir, const std::vector<Record>& records,
                                  const std::string& name = "s.vrec",
                                  const Header& header = test_header()) {
  const std::string path = dir.file(name);
  auto w = RecordingWriter::create(path, header, manual_options());
  EXPECT_TRUE(w.ok()) << (w ? "" : w.error().message);
  if (!w) return path;
  for (const auto& r : records) append(**w, r);
  EXPECT_TRUE((*w)->close().ok());
  return path;
}

}  // namespace vigil::recording::testing

namespace vigil::recording {
inline bool operator==(const Record& a, const Record& b) {
  return a.type == b.type && a.time_ns == b.time_ns && a.data == b.data && a.cols == b.cols &&
         a.rows == b.rows;
}
inline std::ostream& operator<<(std::ostream& os, const Record& r) {
  return os << "{type " << int(r.type) << ", t " << r.time_ns << ", " << r.data.size() << " bytes, "
            << r.cols << "x" << r.rows << "}";
}
}  // namespace vigil::recording
