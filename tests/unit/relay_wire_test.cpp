// The relay's wire format (relay/wire.hpp): round trips, and strict,
// bounded parsing of what a node or the auth service sends.
#include <string>

#include <gtest/gtest.h>

#include "relay/wire.hpp"

namespace vigil::relay {
namespace {

TEST(RelayWire, BatchRoundTrip) {
  Batch b;
  b.server_id = "node-1";
  b.server_hostname = "host-1";
  b.first_seq = 42;
  b.events = {R"({"event":"a","time":"2026-11-28T03:00:00Z"})", R"({"event":"b","x":"\u00e9\n"})"};
  auto back = batch_from_json(to_json(b));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->server_id, b.server_id);
  EXPECT_EQ(back->server_hostname, b.server_hostname);
  EXPECT_EQ(back->first_seq, 42u);
  EXPECT_EQ(back->events, b.events);
  EXPECT_EQ(back->last_seq(), 43u);
  auto ack = ack_from_json(to_json(Ack{17}));
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(ack->acked_seq, 17u);
  auto st = recording_state_from_json(to_json(RecordingState{123, true}));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->bytes, 123u);
  EXPECT_TRUE(st->complete);
}

TEST(RelayWire, BatchRefusals) {
  const std::string ev = R"(["{\"event\":\"a\"}"])";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[]", "JSON object"},
      {"{", "not valid"},
      {R"({"first_seq":1,"events":)" + ev + R"(,"extra":1})", "unknown field \"extra\""},
      {R"({"first_seq":0,"events":)" + ev + "}", "starts at 1"},
      {R"({"first_seq":-1,"events":)" + ev + "}", "non-negative"},
      {R"({"first_seq":"1","events":)" + ev + "}", "non-negative"},
      {R"({"events":)" + ev + "}", "\"first_seq\" is missing"},
      {R"({"first_seq":1,"events":[]})", "empty"},
      {R"({"first_seq":1,"events":[{"event":"a"}]})", "must be a string"},
      {R"({"first_seq":1})", "array of strings"},
      {R"({"first_seq":1,"server_id":7,"events":)" + ev + "}", "must be a string"},
      {R"({"first_seq":1,"server_id":"a\u0001b","events":)" + ev + "}", "control character"},
      {R"({"first_seq":18446744073709551615,"events":)" + ev + "}", "too large"},
      {R"({"first_seq":1,"events":)" + std::string(100, '[') + std::string(100, ']') + "}",
       "nested deeper"},
  };
  for (const auto& [text, why] : cases) {
    auto r = batch_from_json(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().kind(), Errc::invalid_argument) << text;
    EXPECT_NE(r.error().message.find(why), std::string::npos) << text << " -> " << r.error().message;
  }
}

TEST(RelayWire, BatchBounds) {
  std::string many = R"({"first_seq":1,"events":[)";
  for (size_t i = 0; i <= kMaxBatchEvents; ++i) many += (i ? ",\"{}\"" : "\"{}\"");
  many += "]}";
  auto r = batch_from_json(many);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("events, more than"), std::string::npos) << r.error().message;
  const std::string big(kMaxBatchBytes / 2 + 1, 'x');
  r = batch_from_json(R"({"first_seq":1,"events":[")" + big + R"(",")" + big + R"("]})");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("MiB"), std::string::npos) << r.error().message;
  r = batch_from_json(std::string(kMaxBatchJsonBytes + 1, ' '));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("allowed"), std::string::npos) << r.error().message;
}

// The batch as lines (what a node sends): the events travel as the spool
// holds them, not escaped; the same strict header and bounds.
TEST(RelayWire, BatchAsLines) {
  Batch b;
  b.server_id = "node-1";
  b.server_hostname = "host-1";
  b.first_seq = 42;
  b.events = {R"({"event":"a","time":"2026-11-28T03:00:00Z"})", R"({"event":"b","x":"\u00e9\\n"})"};
  const std::string text = to_lines(b);
  EXPECT_NE(text.find("\n" + b.events[0] + "\n" + b.events[1] + "\n"), std::string::npos) << text;
  auto back = batch_from_lines(text);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->server_id, b.server_id);
  EXPECT_EQ(back->server_hostname, b.server_hostname);
  EXPECT_EQ(back->first_seq, 42u);
  EXPECT_EQ(back->events, b.events);

  const std::string head = R"({"first_seq":1})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "first line"},
      {head, "first line"},
      {head + "\n", "no events"},
      {head + "\n{\"event\":\"a\"}", "no '\\n'"},
      {head + "\n\n", "empty line"},
      {"[]\n{}\n", "JSON object"},
      {R"({"first_seq":1,"extra":1})" "\n{}\n", "unknown field \"extra\""},
      {R"({"first_seq":1,"events":[]})" "\n{}\n", "lines after it"},
      {R"({"first_seq":0})" "\n{}\n", "starts at 1"},
      {R"({"first_seq":18446744073709551615})" "\n{}\n", "too large"},
      {std::string(5000, ' ') + head + "\n{}\n", "4096"},
  };
  for (const auto& [t, why] : cases) {
    auto r = batch_from_lines(t);
    ASSERT_FALSE(r.ok()) << t;
    EXPECT_EQ(r.error().kind(), Errc::invalid_argument) << t;
    EXPECT_NE(r.error().message.find(why), std::string::npos) << t << " -> " << r.error().message;
  }
  std::string many = head + "\n";
  for (size_t i = 0; i <= kMaxBatchEvents; ++i) many += "{}\n";
  auto r = batch_from_lines(many);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("more than"), std::string::npos) << r.error().message;
  r = batch_from_lines(head + "\n" + std::string(kMaxBatchBytes + 4096, 'x') + "\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("allowed"), std::string::npos) << r.error().message;
}

TEST(RelayWire, ChunkMeta) {
  auto m = chunk_meta_from("sess-1", "1024", "true");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->offset, 1024u);
  EXPECT_TRUE(m->final);
  m = chunk_meta_from("sess-1", "0", "");
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->final);
  for (auto [sid, off, fin] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"../x", "0", ""}, {"s", "", ""}, {"s", "-1", ""}, {"s", "12a", ""},
           {"s", "99999999999999999999999", ""}, {"s", "0", "yes"}}) {
    auto r = chunk_meta_from(sid, off, fin);
    ASSERT_FALSE(r.ok()) << sid << " " << off << " " << fin;
    EXPECT_EQ(r.error().kind(), Errc::invalid_argument);
  }
  EXPECT_FALSE(ack_from_json(R"({"acked_seq":1,"more":2})").ok());
  EXPECT_FALSE(recording_state_from_json(R"({"bytes":1})").ok());
}

}  // namespace
}  // namespace vigil::relay
