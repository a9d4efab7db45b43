// The recording store: where session recordings are kept, behind one
// interface so that the back end is a choice of configuration. Today's back
// ends: FileRecordingStore (file_store.hpp, <data_dir>/log/records, the
// embedded default) and MemoryRecordingStore (memory_store.hpp). A
// PostgreSQL or object-storage back end implements the same calls and joins
// the contract suite (tests/unit/recording_store_contract_test.cpp);
// docs/architecture.md says how.
//
// A store keeps bytes, not records: RecordingWriter encodes (orders,
// compresses, frames with checksums, format.hpp) and hands the store the
// file header at create() and whole chunks at append(); RecordingReader
// reads them back through a RecordingSource and checks every chunk. So a
// back end never parses a recording, and every back end keeps the same
// bytes (an object-storage back end can serve them as the .vrec file).
//
// The contract, for every back end:
// - create() starts a recording with status in_progress, refusing a sid
//   that exists (already_exists) or cannot name a recording (invalid_argument).
// - append() stores all of its bytes after the earlier ones, or on error
//   none of them (a partial write is taken back); what a writer that died
//   mid-append leaves is at most an unfinished last chunk, which the reader
//   reports as truncation and never gives out.
// - finish() makes everything durable and sets status complete; a sink
//   dropped without finish() sets interrupted, and so does a writer that
//   died (the back end tells from its metadata: the file back end records
//   the owner process; a shared back end would keep a lease).
// - Status is metadata kept beside the bytes, never a lock a reader has to
//   probe: list() and open() say it without touching the writer.
// - open()/info() of an unknown sid: not_found; bytes that are not a
//   recording: RecordingReader::open fails with data_loss.
// - list() is sorted by sid. Thread-safe: any number of writers (one per
//   sid) and readers at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace vigil::recording {

enum class Status {
  unknown,      // no status was kept (a file copied from elsewhere, or damaged metadata)
  in_progress,  // a live writer appends to it
  complete,     // finished: nothing more will be appended
  interrupted,  // its writer stopped without finishing (crashed, killed, gave up)
};

std::string_view status_name(Status s);

struct RecordingInfo {
  std::string sid;
  std::string name;  // what people and messages call it: the file's path, a URL
  Status status = Status::unknown;
  uint64_t bytes = 0;      // stored so far
  int64_t updated_ns = 0;  // the last write (ns since the epoch), 0 when unknown
};

// One recording's bytes for a reader.
class RecordingSource {
 public:
  virtual ~RecordingSource() = default;
  // Up to n bytes at `offset`; fewer only at the end of what is stored.
  virtual Result<size_t> read_at(uint64_t offset, void* buf, size_t n) = 0;
  // As of open().
  virtual const RecordingInfo& info() const = 0;
};

// One recording being written.
class RecordingSink {
 public:
  // Without finish(): status interrupted.
  virtual ~RecordingSink() = default;
  // All of `bytes` after what is stored, or on error none of them.
  virtual Result<void> append(std::string_view bytes) = 0;
  // Durable, status complete; appends after it are refused (failed_precondition).
  virtual Result<void> finish() = 0;
  virtual const std::string& name() const = 0;
};

class RecordingStore {
 public:
  virtual ~RecordingStore() = default;

  // A new recording that starts with `head` (the encoded file header).
  virtual Result<std::unique_ptr<RecordingSink>> create(const std::string& sid,
                                                        std::string_view head) = 0;
  virtual Result<std::unique_ptr<RecordingSource>> open(const std::string& sid) = 0;
  virtual Result<RecordingInfo> info(const std::string& sid) = 0;
  virtual Result<std::vector<RecordingInfo>> list() = 0;
  // Recovery: the writer of `sid` is known to be gone (its session's end was
  // recovered). An in_progress recording becomes interrupted; others stay.
  virtual Result<void> mark_interrupted(const std::string& sid) = 0;
  // Where the store keeps recordings, for messages ("<data_dir>/log/records").
  virtual std::string where() const = 0;

  // The sid a user named: exactly, or a unique prefix of one.
  // not_found / invalid_argument (ambiguous) otherwise.
  Result<std::string> resolve(const std::string& sid_or_prefix);
};

// A sid names one recording in every back end: a file name, an object key,
// a row, a path component: no '/' or control character, not "." or "..",
// at most 200 bytes (room for the file back end's suffixes in a file name).
bool is_valid_sid(std::string_view sid);

}  // namespace vigil::recording
