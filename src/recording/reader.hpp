// Reads a .vrec recording record by record, one chunk in memory at a time.
//
// A chunk is checked whole (frame and payload checksums, decompression,
// record bounds) before any of its records is given out, so a damaged chunk
// gives nothing and everything before it is intact. Reading stops at the
// first damage, which damage() then describes:
//   truncated  the file ends inside a chunk (a crash cut the last write)
//   corrupt    a chunk fails a check (bytes changed on disk)
// A recording whose writer is still running ends in a chunk being written:
// that is no damage, the reader just stops there (writer_active(), from the
// store's status metadata).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "common/result.hpp"
#include "recording/format.hpp"
#include "recording/recording_store.hpp"

typedef struct z_stream_s z_stream;

namespace vigil::recording {

struct Damage {
  enum class Kind { none, truncated, corrupt };
  Kind kind = Kind::none;
  uint64_t offset = 0;  // where the damaged or incomplete chunk starts
  std::string reason;

  explicit operator bool() const { return kind != Kind::none; }
};

// "FILE: truncated at offset N (reason)" / "FILE: corrupt at offset N: reason"
std::string describe(const std::string& path, const Damage& damage);

class RecordingReader {
 public:
  // Fails, naming the file, when it cannot be read or is not a recording
  // (Errc::data_loss for bytes that are not one).
  static Result<RecordingReader> open(const std::string& path);
  // A recording of a store (RecordingStore::open); same failures.
  static Result<RecordingReader> open(std::unique_ptr<RecordingSource> source);
  // open(store.open(sid)).
  static Result<RecordingReader> open(RecordingStore& store, const std::string& sid);

  const Header& header() const { return header_; }
  const std::string& path() const { return path_; }
  // The store's status when it was opened.
  Status status() const { return status_; }
  // Whether its writer was live when it was opened: the session is in progress.
  bool writer_active() const { return status_ == Status::in_progress; }

  // The next record in file order (time order, except for an event that
  // reached the writer later than its reorder window). False at the end of
  // what can be read; damage() then says whether the file ended cleanly.
  bool next(Record& out);
  const Damage& damage() const { return damage_; }
  // End of the last chunk read whole.
  uint64_t offset() const { return offset_; }

 private:
  struct Span {  // a record inside chunk_
    RecordType type;
    int64_t time_ns;
    size_t begin, size;
    uint16_t cols, rows;
  };

  RecordingReader(std::unique_ptr<RecordingSource> source, Header header, uint64_t offset);
  bool load_chunk();
  bool stop(Damage::Kind kind, std::string reason);
  bool inflate_chunk(const Frame& frame, std::string& stored);
  bool parse_records(std::string* why);

  std::string path_;
  std::unique_ptr<RecordingSource> source_;
  Header header_;
  uint64_t offset_;
  Status status_;
  bool done_ = false;
  Damage damage_;
  std::unique_ptr<z_stream, void (*)(z_stream*)> zs_;  // the file's deflate stream
  bool stream_open_ = false;
  std::string chunk_;  // the current chunk's payload, decompressed
  std::vector<Span> spans_;
  size_t next_span_ = 0;
};

}  // namespace vigil::recording
