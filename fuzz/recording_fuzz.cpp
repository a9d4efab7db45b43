// A .vrec file through RecordingReader (src/recording/reader.cpp): the file
// header and its JSON, chunk frames, checksums, the deflate stream that runs
// across chunks, and the records in each chunk.
//
// Checksums and compression would stop a fuzzer at the first chunk, so the
// first input byte chooses how the rest becomes a file:
//   0  as is;
//   1  as is, with every checksum recomputed (header, frames, payloads), so
//      changed lengths, codecs and compressed bytes reach inflate and the
//      record parser;
//   2  composed: a valid header, then chunks made from pieces of the input
//      (u8 flags, u16 length, that many payload bytes), each compressed into
//      the file's deflate stream; flags bit 0 starts a new stream, bit 1
//      states a raw length one byte short.
// Properties: a reader that ends without damage has read the whole file,
// and every record it gives is of a known type with a well-formed body. For
// composed files, the records must be exactly those a reference decoder
// written here from format.hpp finds, chunk by chunk, and the reader must
// stop as corrupt at the first chunk that decoder rejects.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "check.hpp"
#include "recording/format.hpp"
#include "recording/reader.hpp"

using namespace vigil::recording;

namespace {

void fix_checksums(std::string& file) {
  auto* p = reinterpret_cast<unsigned char*>(file.data());
  if (file.size() < kFilePrefixSize) return;
  const size_t json_len = get_u32(p + 12);
  if (json_len > file.size() - kFilePrefixSize) return;
  std::string crc;
  put_u32(crc, crc32_of(file.substr(0, 16) + file.substr(kFilePrefixSize, json_len)));
  file.replace(16, 4, crc);
  size_t at = kFilePrefixSize + json_len;
  while (file.size() - at >= kFrameSize) {
    const size_t stored = get_u32(p + at + 12);
    const size_t have = std::min(stored, file.size() - at - kFrameSize);
    std::string sums;
    put_u32(sums, crc32_of(std::string_view(file).substr(at + kFrameSize, have)));
    file.replace(at + 16, 4, sums);
    sums.clear();
    put_u32(sums, crc32_of(std::string_view(file).substr(at, 20)));
    file.replace(at + 20, 4, sums);
    if (stored > have) break;
    at += kFrameSize + stored;
  }
}

// The reference: the records of one chunk's payload as format.hpp defines
// them, or nullopt when a record is malformed (the whole chunk is then
// corrupt). Deliberately written apart from reader.cpp.
std::optional<std::vector<Record>> reference_records(std::string_view raw, int64_t start_ns) {
  std::vector<Record> out;
  size_t pos = 0;
  auto varint = [&](size_t end, uint64_t& v) {
    v = 0;
    for (unsigned i = 0; i < 10; ++i) {  // 10 groups of 7 bits reach past 64
      if (pos >= end) return false;
      const auto b = static_cast<uint8_t>(raw[pos++]);
      v |= uint64_t{b & 0x7fu} << (7 * i);
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  uint64_t time = static_cast<uint64_t>(start_ns);
  while (pos < raw.size()) {
    const auto type = static_cast<uint8_t>(raw[pos++]);
    uint64_t delta, len;
    if (!varint(raw.size(), delta) || !varint(raw.size(), len) || len > raw.size() - pos)
      return std::nullopt;
    time += (delta >> 1) ^ (0 - (delta & 1));  // zigzag, wrapping
    const size_t body = pos, end = pos + len;
    pos = end;
    Record r;
    r.type = static_cast<RecordType>(type);
    r.time_ns = static_cast<int64_t>(time);
    if (type == 2) {
      uint64_t cols, rows;
      size_t after = pos;
      pos = body;
      if (!varint(end, cols) || !varint(end, rows) || cols > 0xffff || rows > 0xffff)
        return std::nullopt;
      pos = after;
      r.cols = static_cast<uint16_t>(cols);
      r.rows = static_cast<uint16_t>(rows);
    } else if (type == 1 || type == 3) {
      r.data = raw.substr(body, len);
    } else {
      continue;  // a newer writer's record type: skipped
    }
    out.push_back(std::move(r));
  }
  return out;
}

// What reading a composed file must give.
struct Expected {
  std::vector<Record> records;
  bool corrupt = false;  // the reader must stop as corrupt at some chunk
};

constexpr int64_t kComposedStart = 1'700'000'000'000'000'000;

std::string compose(std::string_view in, Expected& expected) {
  Header h;
  h.sid = "00000000-0000-4000-8000-000000000000";
  h.server_id = "fuzz";
  h.user = "alice";
  h.login = "root";
  h.start_ns = kComposedStart;
  std::string file = encode_file_header(h);
  z_stream zs{};
  bool open = false;
  while (in.size() >= 3) {
    const auto flags = static_cast<uint8_t>(in[0]);
    size_t len = static_cast<uint8_t>(in[1]) | static_cast<uint8_t>(in[2]) << 8;
    in.remove_prefix(3);
    len = std::min(len, in.size());
    std::string raw(in.substr(0, len));
    in.remove_prefix(len);
    const bool start = !open || (flags & 1);
    if (start) {
      if (open) deflateEnd(&zs);
      zs = z_stream{};
      FUZZ_CHECK(deflateInit2(&zs, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflate");
      open = true;
    }
    std::string stored(deflateBound(&zs, raw.size()) + 64, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(raw.data());
    zs.avail_in = static_cast<uInt>(raw.size());
    zs.next_out = reinterpret_cast<Bytef*>(stored.data());
    zs.avail_out = static_cast<uInt>(stored.size());
    // Z_BUF_ERROR: nothing to add (an empty piece right after a flush).
    const int rc = deflate(&zs, Z_SYNC_FLUSH);
    FUZZ_CHECK((rc == Z_OK || rc == Z_BUF_ERROR) && zs.avail_in == 0, "deflate");
    stored.resize(stored.size() - zs.avail_out);
    const bool short_len = (flags & 2) && !raw.empty();
    if (!expected.corrupt) {
      // An empty stored payload cannot be inflated; a raw length one short
      // leaves output over.
      auto records = reference_records(raw, kComposedStart);
      if (stored.empty() || short_len || !records)
        expected.corrupt = true;
      else
        expected.records.insert(expected.records.end(), records->begin(), records->end());
    }
    Frame f;
    f.codec = start ? Codec::deflate_start : Codec::deflate_continue;
    f.raw_len = static_cast<uint32_t>(raw.size() - (short_len ? 1 : 0));
    f.stored_len = static_cast<uint32_t>(stored.size());
    f.payload_crc = crc32_of(stored);
    encode_frame(f, file);
    file += stored;
  }
  if (open) deflateEnd(&zs);
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 1) return 0;
  const std::string_view in(reinterpret_cast<const char*>(bytes + 1), size - 1);
  std::string file;
  std::optional<Expected> expected;
  switch (bytes[0] % 3) {
    case 0: file = in; break;
    case 1: file = in; fix_checksums(file); break;
    case 2: file = compose(in, expected.emplace()); break;
  }

  const int fd = memfd_create("fuzz.vrec", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0, "memfd_create");
  FUZZ_CHECK(write(fd, file.data(), file.size()) == static_cast<ssize_t>(file.size()), "write");
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto reader = RecordingReader::open(path);
  FUZZ_CHECK(reader || !expected, "a composed file opens: " + (reader ? "" : reader.error().message));
  if (reader) {
    Record r;
    size_t n = 0;
    while (reader->next(r)) {
      FUZZ_CHECK(r.type == RecordType::output || r.type == RecordType::event ||
                     r.type == RecordType::resize,
                 "only known record types are given out");
      if (r.type == RecordType::resize) FUZZ_CHECK(r.data.empty(), "a resize carries no bytes");
      if (expected) {
        FUZZ_CHECK(n < expected->records.size(), "more records than the reference decoder finds");
        const Record& want = expected->records[n];
        FUZZ_CHECK(r.type == want.type && r.time_ns == want.time_ns && r.data == want.data &&
                       r.cols == want.cols && r.rows == want.rows,
                   "record " + std::to_string(n) + " differs from the reference decoder's");
      }
      ++n;
    }
    if (expected) {
      FUZZ_CHECK(n == expected->records.size(), "fewer records than the reference decoder finds");
      FUZZ_CHECK(reader->damage().kind ==
                     (expected->corrupt ? Damage::Kind::corrupt : Damage::Kind::none),
                 "a composed file is corrupt exactly where the reference decoder says: " +
                     reader->damage().reason);
    }
    FUZZ_CHECK(reader->offset() <= file.size(), "the reader stays inside the file");
    if (!reader->damage())
      FUZZ_CHECK(reader->offset() == file.size(), "an undamaged file is read to its end");
    else
      FUZZ_CHECK(!reader->damage().reason.empty(), "damage says why");
  } else {
    FUZZ_CHECK(reader.error().message.find(path) != std::string::npos, "errors name the file");
  }
  close(fd);
  return 0;
}
