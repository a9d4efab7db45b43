// The .vrec session recording: what a recording holds and how it is laid
// out on disk (docs/recording-format.md is the reference). The writer and
// the reader share these definitions so that the two cannot drift apart.
//
//   file   = file header, then chunks until the end of the file
//   header = "VIGILREC" u16:version u16:0 u32:N u32:crc  N bytes of JSON
//   chunk  = frame (24 bytes) + payload (raw deflate, one stream per file)
//   payload (decompressed) = records, each
//            u8:type  zigzag-varint:time delta  varint:body length  body
// All integers little endian.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace vigil::recording {

inline constexpr uint16_t kFormatVersion = 1;
inline constexpr const char* kFileExtension = ".vrec";

// Who, where and how the session started: the recording's file header.
struct Header {
  uint16_t version = kFormatVersion;  // set by the reader from the file
  std::string sid;
  std::string server_id;
  std::string user;      // the cluster user who logged in
  std::string login;     // the OS account the session runs as
  int64_t start_ns = 0;  // ns since the Unix epoch; record times count from here
  uint16_t cols = 80;    // initial terminal size
  uint16_t rows = 24;
  bool interactive = true;  // a shell on a terminal, not a single command
};

enum class RecordType : uint8_t {
  output = 1,  // bytes the session's terminal printed
  resize = 2,  // the terminal's new size
  event = 3,   // one audit event, a JSON line without its '\n'
};

struct Record {
  RecordType type = RecordType::output;
  int64_t time_ns = 0;  // ns since the Unix epoch
  std::string data;     // output bytes or the event's JSON
  uint16_t cols = 0;    // resize only
  uint16_t rows = 0;
};

// ---- On-disk layout, for writer.cpp and reader.cpp ----

inline constexpr std::string_view kFileMagic{"VIGILREC", 8};
inline constexpr size_t kFilePrefixSize = 20;  // magic, version, reserved, length, crc
inline constexpr uint32_t kMaxHeaderJson = 64 * 1024;

inline constexpr std::string_view kChunkMagic{"VRCK", 4};
inline constexpr size_t kFrameSize = 24;
// Bounds a reader enforces before it allocates: far above what a writer
// makes (~64 KiB chunks), low enough that a damaged length cannot exhaust memory.
inline constexpr uint32_t kMaxChunkBytes = 64u << 20;

// Chunks are compressed as one raw deflate stream (RFC 1951) that each
// chunk ends with a sync flush: a chunk is decodable as soon as it is
// written, and later chunks still use the earlier ones as their dictionary,
// so flushing every second costs little compression. The writer starts a
// new stream in its first chunk and after it had to drop chunks.
enum class Codec : uint8_t {
  deflate_start = 1,     // starts a new deflate stream
  deflate_continue = 2,  // continues the previous chunk's stream
};

// A chunk's frame:
//   0  4  "VRCK"
//   4  1  codec
//   5  3  reserved, 0
//   8  4  raw length (payload after decompression)
//  12  4  stored length (payload bytes that follow the frame)
//  16  4  CRC-32 of the stored payload
//  20  4  CRC-32 of frame bytes 0..20: lengths are trusted only when it holds
struct Frame {
  Codec codec = Codec::deflate_start;
  uint32_t raw_len = 0;
  uint32_t stored_len = 0;
  uint32_t payload_crc = 0;
};

uint32_t crc32_of(std::string_view bytes);

void put_u16(std::string& out, uint16_t v);
void put_u32(std::string& out, uint32_t v);
uint16_t get_u16(const unsigned char* p);
uint32_t get_u32(const unsigned char* p);

void put_varint(std::string& out, uint64_t v);
// Reads a varint at p[*pos..n); false when it runs past n or over 64 bits.
bool get_varint(const unsigned char* p, size_t n, size_t* pos, uint64_t* v);
inline uint64_t zigzag(int64_t v) { return (uint64_t(v) << 1) ^ uint64_t(v >> 63); }
inline int64_t unzigzag(uint64_t v) { return int64_t(v >> 1) ^ -int64_t(v & 1); }

// The file header, complete with its prefix.
std::string encode_file_header(const Header& h);
// Parses the header JSON (the bytes after the prefix); an error says which
// field is missing or wrong.
Result<Header> decode_header_json(std::string_view json);

void encode_frame(const Frame& f, std::string& out);
// Parses a frame; std::nullopt with `why` set when it is not a valid frame.
std::optional<Frame> decode_frame(const unsigned char* p, std::string* why);

// Appends one record to a chunk's payload; `prev_ns` is the time of the
// previous record in the chunk (the header's start_ns for the first).
void encode_record(std::string& payload, int64_t prev_ns, RecordType type, int64_t time_ns,
                   std::string_view data, uint16_t cols, uint16_t rows);

}  // namespace vigil::recording
