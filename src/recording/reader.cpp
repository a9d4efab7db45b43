#include "recording/reader.hpp"

#include <zlib.h>

#include <cstring>

#include "recording/file_store.hpp"

namespace vigil::recording {
namespace {

// Whether the n bytes at p could be the start of `magic` (a write cut short).
bool starts_like(const void* p, size_t n, std::string_view magic) {
  return std::memcmp(p, magic.data(), std::min(n, magic.size())) == 0;
}

void free_inflate(z_stream* zs) {
  inflateEnd(zs);
  delete zs;
}

}  // namespace

std::string describe(const std::string& path, const Damage& d) {
  switch (d.kind) {
    case Damage::Kind::none:
      return path + ": intact";
    case Damage::Kind::truncated:
      return path + ": truncated at offset " + std::to_string(d.offset) + " (" + d.reason + ")";
    case Damage::Kind::corrupt:
      return path + ": corrupt at offset " + std::to_string(d.offset) + ": " + d.reason;
  }
  return path;
}

Result<RecordingReader> RecordingReader::open(const std::string& path) {
  auto source = FileRecordingStore::open_file(path);
  if (!source) return source.error();
  return open(std::move(*source));
}

Result<RecordingReader> RecordingReader::open(RecordingStore& store, const std::string& sid) {
  auto source = store.open(sid);
  if (!source) return source.error();
  return open(std::move(*source));
}

Result<RecordingReader> RecordingReader::open(std::unique_ptr<RecordingSource> source) {
  const std::string path = source->info().name;
  auto read_at = [&source](uint64_t offset, void* buf, size_t n) {
    return source->read_at(offset, buf, n);
  };
  unsigned char prefix[kFilePrefixSize];
  auto n = read_at(0, prefix, sizeof prefix);
  if (!n) return Error::sys("cannot read " + path, n.error().err);
  if (*n == 0) return Error{path + ": empty, not a recording (or its writer has not started yet)", 0, Errc::data_loss};
  if (!starts_like(prefix, *n, kFileMagic))
    return Error{path + ": not a Vigil recording (it does not start with \"VIGILREC\")", 0, Errc::data_loss};
  if (*n < kFilePrefixSize) return Error{path + ": truncated at offset 0 (inside the file header)", 0, Errc::data_loss};
  const uint32_t json_len = get_u32(prefix + 12);
  if (json_len > kMaxHeaderJson)
    return Error{path + ": corrupt at offset 0: impossible header length", 0, Errc::data_loss};

  std::string header_bytes(reinterpret_cast<const char*>(prefix), 16);
  std::string json(json_len, '\0');
  n = read_at(kFilePrefixSize, json.data(), json_len);
  if (!n) return Error::sys("cannot read " + path, n.error().err);
  if (*n < json_len) return Error{path + ": truncated at offset 0 (inside the file header)", 0, Errc::data_loss};
  if (crc32_of(header_bytes + json) != get_u32(prefix + 16))
    return Error{path + ": corrupt at offset 0: the file header fails its checksum", 0, Errc::data_loss};
  // Every version keeps the prefix as it is, so the checksum comes first.
  const uint16_t version = get_u16(prefix + 8);
  if (version != kFormatVersion)
    return Error{path + ": recording format version " + std::to_string(version) +
                 " is not supported (this Vigil reads version " + std::to_string(kFormatVersion) +
                 ")", 0, Errc::data_loss};
  auto header = decode_header_json(json);
  if (!header) return Error{path + ": corrupt at offset 0: " + header.error().message, 0, Errc::data_loss};
  header->version = version;

  return RecordingReader(std::move(source), std::move(*header), kFilePrefixSize + json_len);
}

RecordingReader::RecordingReader(std::unique_ptr<RecordingSource> source, Header header,
                                 uint64_t offset)
    : path_(source->info().name),
      source_(std::move(source)),
      header_(std::move(header)),
      offset_(offset),
      status_(source_->info().status),
      zs_(new z_stream{}, free_inflate) {}

bool RecordingReader::next(Record& out) {
  while (next_span_ == spans_.size()) {
    if (done_ || !load_chunk()) return false;
  }
  const Span& s = spans_[next_span_++];
  out.type = s.type;
  out.time_ns = s.time_ns;
  out.data.assign(chunk_, s.begin, s.size);
  out.cols = s.cols;
  out.rows = s.rows;
  return true;
}

bool RecordingReader::stop(Damage::Kind kind, std::string reason) {
  done_ = true;
  // The writer of a live session may be in the middle of appending a chunk.
  if (kind == Damage::Kind::truncated && writer_active()) return false;
  damage_ = {kind, offset_, std::move(reason)};
  return false;
}

// Reads, checks and decodes the chunk at offset_; false at the end or on damage.
bool RecordingReader::load_chunk() {
  spans_.clear();
  next_span_ = 0;
  unsigned char frame_bytes[kFrameSize];
  auto n = source_->read_at(offset_, frame_bytes, kFrameSize);
  if (!n) return stop(Damage::Kind::corrupt, n.error().message);
  if (*n == 0) {
    done_ = true;  // a clean end between chunks
    return false;
  }
  if (*n < kFrameSize) {
    if (starts_like(frame_bytes, *n, kChunkMagic))
      return stop(Damage::Kind::truncated, "the file ends inside a chunk's frame");
    return stop(Damage::Kind::corrupt, "no chunk starts here (bad magic)");
  }
  std::string why;
  auto frame = decode_frame(frame_bytes, &why);
  if (!frame) return stop(Damage::Kind::corrupt, why);

  std::string stored(frame->stored_len, '\0');
  n = source_->read_at(offset_ + kFrameSize, stored.data(), stored.size());
  if (!n) return stop(Damage::Kind::corrupt, n.error().message);
  if (*n < stored.size())
    return stop(Damage::Kind::truncated, "the file ends " + std::to_string(*n) +
                                             " bytes into a chunk of " +
                                             std::to_string(stored.size()));
  if (crc32_of(stored) != frame->payload_crc)
    return stop(Damage::Kind::corrupt, "the chunk's data fails its checksum");
  if (!inflate_chunk(*frame, stored))
    return stop(Damage::Kind::corrupt, "the chunk does not decompress to its stated size");
  if (!parse_records(&why)) return stop(Damage::Kind::corrupt, why);
  offset_ += kFrameSize + frame->stored_len;
  return true;
}

// Decodes a chunk's payload into chunk_, continuing the deflate stream of
// the chunks before it unless this one starts a new stream.
bool RecordingReader::inflate_chunk(const Frame& frame, std::string& stored) {
  z_stream* zs = zs_.get();
  if (frame.codec == Codec::deflate_start) {
    if (stream_open_ ? inflateReset(zs) != Z_OK : inflateInit2(zs, -15) != Z_OK) return false;
    stream_open_ = true;
  } else if (!stream_open_) {
    return false;  // continues a stream this file never started
  }
  // One byte of spare room: the sync-flush marker that ends the chunk
  // yields no output but must be consumed too.
  chunk_.assign(frame.raw_len + 1, '\0');
  zs->next_in = reinterpret_cast<Bytef*>(stored.data());
  zs->avail_in = static_cast<uInt>(stored.size());
  zs->next_out = reinterpret_cast<Bytef*>(chunk_.data());
  zs->avail_out = static_cast<uInt>(chunk_.size());
  const int rc = inflate(zs, Z_SYNC_FLUSH);
  if ((rc != Z_OK && rc != Z_STREAM_END) || zs->avail_in != 0 || zs->avail_out != 1) return false;
  chunk_.resize(frame.raw_len);
  return true;
}

bool RecordingReader::parse_records(std::string* why) {
  const auto* p = reinterpret_cast<const unsigned char*>(chunk_.data());
  const size_t n = chunk_.size();
  size_t pos = 0;
  uint64_t prev = static_cast<uint64_t>(header_.start_ns);
  while (pos < n) {
    const uint8_t type = p[pos++];
    uint64_t delta, len;
    if (!get_varint(p, n, &pos, &delta) || !get_varint(p, n, &pos, &len) || len > n - pos) {
      *why = "a record runs past the end of its chunk";
      spans_.clear();
      return false;
    }
    prev += static_cast<uint64_t>(unzigzag(delta));  // wraps like the writer's subtraction
    Span s{static_cast<RecordType>(type), static_cast<int64_t>(prev), pos, len, 0, 0};
    const size_t body_end = pos + len;
    pos = body_end;
    if (s.type == RecordType::resize) {
      size_t at = s.begin;
      uint64_t cols, rows;
      if (!get_varint(p, body_end, &at, &cols) || !get_varint(p, body_end, &at, &rows) ||
          cols > 0xffff || rows > 0xffff) {
        *why = "a resize record is malformed";
        spans_.clear();
        return false;
      }
      s.cols = static_cast<uint16_t>(cols);
      s.rows = static_cast<uint16_t>(rows);
      s.size = 0;
    } else if (s.type != RecordType::output && s.type != RecordType::event) {
      continue;  // a record type from a newer writer: skipped, as the format allows
    }
    spans_.push_back(s);
  }
  return true;
}

}  // namespace vigil::recording
