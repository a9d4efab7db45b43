// The relay's wire format: what a node sends the auth service and what it
// answers, as JSON (docs/architecture.md, "Relay: events and recordings from
// nodes to the auth service", has the routes). Parsing is strict and
// bounded: unknown fields, wrong types, too many or too long events are
// refused with Errc::invalid_argument and a message naming the field.
//
//   POST /v1/events        body: Batch    answer: Ack
//   GET  /v1/recordings/:sid/upload       answer: RecordingState
//   PUT  /v1/recordings/:sid?offset=N[&final=true]  body: the bytes  answer: RecordingState
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"

namespace vigil::relay {

// Bounds of one batch on the wire. A single event may be as long as
// auditlog::kMaxEventBytes (16 MiB): a batch always carries at least one.
inline constexpr size_t kMaxBatchEvents = 10'000;
inline constexpr size_t kMaxBatchBytes = 32u << 20;  // the events' bytes together
// The JSON text of a batch: escaping may double the events' bytes.
inline constexpr size_t kMaxBatchJsonBytes = 2 * kMaxBatchBytes + 4096;
// One recording chunk (PUT body).
inline constexpr size_t kMaxChunkBytes = 4u << 20;
// server_id and server_hostname.
inline constexpr size_t kMaxNameBytes = 255;

// Events of one node with consecutive sequence numbers.
//   {"first_seq":17,"server_hostname":"node-1","server_id":"<uuid>",
//    "events":["{\"event\":\"session.start\",...}", ...]}
// server_id and server_hostname are what the node believes it is; the auth
// service uses its caller's certificate instead and refuses a batch whose
// server_id is another node's.
struct Batch {
  std::string server_id;
  std::string server_hostname;
  uint64_t first_seq = 0;           // sequence number of events[0], at least 1
  std::vector<std::string> events;  // one JSON object each, without the '\n'

  uint64_t last_seq() const { return first_seq + events.size() - 1; }  // events not empty
  size_t event_bytes() const;
};

// The auth service holds every event of the caller up to acked_seq:
//   {"acked_seq":42}
struct Ack {
  uint64_t acked_seq = 0;
};

// What the auth service holds of one recording:
//   {"bytes":1048576,"complete":false}
// A node resumes its upload at `bytes`; complete means the final chunk was
// taken and the recording is in the auth service's recording store.
struct RecordingState {
  uint64_t bytes = 0;
  bool complete = false;
};

// A chunk's metadata, from the PUT's path and query.
struct ChunkMeta {
  std::string sid;
  uint64_t offset = 0;
  bool final = false;  // the recording ends with this chunk
};

std::string to_json(const Batch& batch);
// The same batch as lines (Content-Type kBatchLinesType): the header object
// first, then each event as its own line, as the node's spool holds it, so
// neither side escapes or unescapes the events (the auth service checks
// each when it stores it):
//   {"first_seq":17,"server_hostname":"node-1","server_id":"<uuid>"}\n
//   {"event":"session.start",...}\n ...
// Same limits as the JSON form; at most kMaxBatchBytes + 4096 bytes in all.
inline constexpr std::string_view kBatchLinesType = "application/x-ndjson";
std::string to_lines(const Batch& batch);
Result<Batch> batch_from_lines(std::string_view text);
std::string to_json(const Ack& ack);
std::string to_json(const RecordingState& state);

Result<Batch> batch_from_json(std::string_view text);
Result<Batch> batch_from_value(const nlohmann::json& value);  // a body the router parsed
Result<Ack> ack_from_json(std::string_view text);
Result<RecordingState> recording_state_from_json(std::string_view text);
// offset: decimal digits; final: absent (empty), "true" or "false".
Result<ChunkMeta> chunk_meta_from(std::string_view sid, std::string_view offset,
                                  std::string_view final);

}  // namespace vigil::relay
