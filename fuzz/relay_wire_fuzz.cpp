// What a node sends the auth service (src/relay/wire.cpp, inbox.cpp): a
// batch of events as JSON, and each event as the Inbox rewrites it.
//
// Properties: a batch that parses prints back to one that parses equal;
// every refusal is invalid_argument with a readable message; an event the
// Inbox accepts is stored as one framed JSON line that carries the
// caller's server_id and hostname and the sequence number, never the
// body's.
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "auditlog/emitter.hpp"
#include "check.hpp"
#include "relay/inbox.hpp"
#include "relay/wire.hpp"

using namespace vigil;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(bytes), size);
  auto batch = relay::batch_from_json(text);
  if (!batch) {
    FUZZ_CHECK(batch.error().kind() == Errc::invalid_argument, "refusals are invalid_argument");
    FUZZ_CHECK(!batch.error().message.empty() && batch.error().message.size() < fuzz::kMaxMessage,
               "a refusal's message is readable");
  } else {
    auto again = relay::batch_from_json(relay::to_json(*batch));
    FUZZ_CHECK(again, "a parsed batch prints back to one that parses");
    FUZZ_CHECK(again->first_seq == batch->first_seq && again->events == batch->events &&
                   again->server_id == batch->server_id,
               "printed and read back, the batch changed");
  }
  // The same input as a batch in lines.
  auto lines = relay::batch_from_lines(text);
  if (!lines) {
    FUZZ_CHECK(lines.error().kind() == Errc::invalid_argument, "refusals are invalid_argument");
  } else {
    auto again = relay::batch_from_lines(relay::to_lines(*lines));
    FUZZ_CHECK(again && again->first_seq == lines->first_seq && again->events == lines->events,
               "a batch in lines printed and read back changed");
  }
  // The input as one event, and each event of a batch.
  const relay::Caller caller{"node-1", "host-1"};
  auto check_event = [&](std::string_view json) {
    int64_t t = 0;
    auto line = relay::rewrite_event(json, caller, 7, &t);
    if (!line) {
      FUZZ_CHECK(line.error().kind() == Errc::invalid_argument ||
                     line.error().kind() == Errc::permission_denied,
                 "event refusals are invalid_argument or permission_denied");
      return;
    }
    FUZZ_CHECK(auditlog::check_event_line(*line), "a rewritten event is one framed line");
    auto j = nlohmann::json::parse(*line, nullptr, false);
    FUZZ_CHECK(j.is_object() && j["server_id"] == "node-1" && j["server_hostname"] == "host-1" &&
                   j["relay_seq"] == 7,
               "the stored event carries the caller's identity and the sequence number");
    // Stamping changes nothing else: the node's members mean the same.
    auto sent = nlohmann::json::parse(json, nullptr, false);
    if (sent.is_object()) {
      sent["server_id"] = "node-1";
      sent["server_hostname"] = "host-1";
      sent["relay_seq"] = 7;
      FUZZ_CHECK(sent == j, "the stored event is the node's with the three fields set");
    }
  };
  check_event(text);
  if (batch)
    for (const auto& e : batch->events) check_event(e);
  if (lines)
    for (const auto& e : lines->events) check_event(e);
  return 0;
}
