#include "recording/format.hpp"

#include <zlib.h>

#include <nlohmann/json.hpp>

#include "audit/json.hpp"

namespace vigil::recording {

uint32_t crc32_of(std::string_view bytes) {
  return static_cast<uint32_t>(
      ::crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

void put_u16(std::string& out, uint16_t v) {
  out += static_cast<char>(v & 0xff);
  out += static_cast<char>(v >> 8);
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

uint16_t get_u16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

uint32_t get_u32(const unsigned char* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

bool get_varint(const unsigned char* p, size_t n, size_t* pos, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*pos >= n) return false;
    const unsigned char b = p[(*pos)++];
    result |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) {
      *v = result;
      return true;
    }
  }
  return false;
}

std::string encode_file_header(const Header& h) {
  std::string json;
  {
    audit::JsonObject o(json);
    o.uint64("cols", h.cols);
    o.boolean("interactive", h.interactive);
    o.string("login", h.login);
    o.uint64("rows", h.rows);
    o.string("server_id", h.server_id);
    o.string("sid", h.sid);
    o.time("start", h.start_ns);  // for people; start_ns is exact
    o.int64("start_ns", h.start_ns);
    o.string("user", h.user);
    o.uint64("version", kFormatVersion);
    o.end();
  }
  std::string out(kFileMagic);
  put_u16(out, kFormatVersion);
  put_u16(out, 0);
  put_u32(out, static_cast<uint32_t>(json.size()));
  put_u32(out, crc32_of(out + json));
  out += json;
  return out;
}

Result<Header> decode_header_json(std::string_view text) {
  using Json = nlohmann::json;
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Error{"its header is not a JSON object"};
  Header h;
  auto field = [&](const char* key, Json::value_t type) -> const Json* {
    auto it = j.find(key);
    if (it == j.end()) return nullptr;
    // Every JSON number we write is an integer; nlohmann types unsigned ones
    // apart from signed ones, so compare on "is a number" for those.
    if (type == Json::value_t::number_integer ? !it->is_number_integer() : it->type() != type)
      return nullptr;
    return &*it;
  };
  struct StringField {
    const char* key;
    std::string* dest;
  };
  for (auto [key, dest] : {StringField{"sid", &h.sid}, StringField{"server_id", &h.server_id},
                           StringField{"user", &h.user}, StringField{"login", &h.login}}) {
    const Json* v = field(key, Json::value_t::string);
    if (!v) return Error{std::string("its header has no string \"") + key + "\""};
    *dest = v->get<std::string>();
  }
  const Json* start = field("start_ns", Json::value_t::number_integer);
  const Json* cols = field("cols", Json::value_t::number_integer);
  const Json* rows = field("rows", Json::value_t::number_integer);
  const Json* interactive = field("interactive", Json::value_t::boolean);
  if (!start || !cols || !rows || !interactive)
    return Error{"its header lacks start_ns, cols, rows or interactive"};
  h.start_ns = start->get<int64_t>();
  h.cols = static_cast<uint16_t>(cols->get<uint64_t>());
  h.rows = static_cast<uint16_t>(rows->get<uint64_t>());
  h.interactive = interactive->get<bool>();
  return h;
}

void encode_frame(const Frame& f, std::string& out) {
  const size_t begin = out.size();
  out += kChunkMagic;
  out += static_cast<char>(f.codec);
  out.append(3, '\0');
  put_u32(out, f.raw_len);
  put_u32(out, f.stored_len);
  put_u32(out, f.payload_crc);
  put_u32(out, crc32_of(std::string_view(out).substr(begin, 20)));
}

std::optional<Frame> decode_frame(const unsigned char* p, std::string* why) {
  const std::string_view bytes(reinterpret_cast<const char*>(p), kFrameSize);
  if (bytes.substr(0, 4) != kChunkMagic) {
    *why = "no chunk starts here (bad magic)";
    return std::nullopt;
  }
  if (crc32_of(bytes.substr(0, 20)) != get_u32(p + 20)) {
    *why = "the chunk frame fails its checksum";
    return std::nullopt;
  }
  Frame f;
  f.codec = static_cast<Codec>(p[4]);
  f.raw_len = get_u32(p + 8);
  f.stored_len = get_u32(p + 12);
  f.payload_crc = get_u32(p + 16);
  if (f.codec != Codec::deflate_start && f.codec != Codec::deflate_continue) {
    *why = "unknown codec " + std::to_string(p[4]) + " (written by a newer Vigil?)";
    return std::nullopt;
  }
  if (f.raw_len > kMaxChunkBytes || f.stored_len > kMaxChunkBytes) {
    *why = "the chunk's lengths are impossible";
    return std::nullopt;
  }
  return f;
}

void encode_record(std::string& payload, int64_t prev_ns, RecordType type, int64_t time_ns,
                   std::string_view data, uint16_t cols, uint16_t rows) {
  payload += static_cast<char>(type);
  // Unsigned arithmetic: the delta of far-apart times wraps instead of overflowing.
  put_varint(payload, zigzag(static_cast<int64_t>(uint64_t(time_ns) - uint64_t(prev_ns))));
  if (type == RecordType::resize) {
    std::string body;
    put_varint(body, cols);
    put_varint(body, rows);
    put_varint(payload, body.size());
    payload += body;
  } else {
    put_varint(payload, data.size());
    payload += data;
  }
}

}  // namespace vigil::recording
