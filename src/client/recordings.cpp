#include "client/recordings.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>

#include "api/router.hpp"
#include "api/server.hpp"
#include "audit/text_json.hpp"

namespace vigil::client {
namespace {

// What one call asks for (the server's bound, services::kMaxReadBytes).
constexpr size_t kWindow = 1u << 20;

recording::Status status_from(const std::string& name) {
  for (auto s : {recording::Status::in_progress, recording::Status::complete,
                 recording::Status::interrupted})
    if (recording::status_name(s) == name) return s;
  return recording::Status::unknown;
}

std::string header(const api::Response& r, const char* name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? std::string() : it->second;
}

class RemoteSource final : public recording::RecordingSource {
 public:
  RemoteSource(api::Client& api, std::string sid) : api_(api), sid_(std::move(sid)) {
    info_.sid = sid_;
    info_.name = "session " + sid_;
  }

  // Fetches the window at `offset`.
  Result<void> fetch(uint64_t offset) {
    auto r = api_.call("GET", "/v1/recordings/" + api::percent_encode(sid_),
                       {{"offset", std::to_string(offset)}, {"length", std::to_string(kWindow)}});
    if (!r) return r.error();
    if (r->status / 100 != 2) return api::error_from_response(r->status, r->body);
    if (r->body.size() > kWindow)
      return Error::of(Errc::data_loss, "the auth service sent " + std::to_string(r->body.size()) +
                                            " bytes of session " + sid_ + " for a window of " +
                                            std::to_string(kWindow));
    window_ = std::move(r->body);
    window_at_ = offset;
    if (!opened_) {
      opened_ = true;
      info_.status = status_from(header(*r, "x-vigil-recording-status"));
      const std::string bytes = header(*r, "x-vigil-recording-bytes");
      uint64_t n = 0;
      auto [p, ec] = std::from_chars(bytes.data(), bytes.data() + bytes.size(), n);
      if (ec == std::errc() && p == bytes.data() + bytes.size()) info_.bytes = n;
    }
    return {};
  }

  Result<size_t> read_at(uint64_t offset, void* buf, size_t n) override {
    size_t got = 0;
    while (got < n) {
      const uint64_t at = offset + got;
      if (at < window_at_ || at >= window_at_ + window_.size()) {
        // Right after a window the server sent short: that was the end.
        if (at == window_at_ + window_.size() && window_.size() < kWindow) break;
        if (auto r = fetch(at); !r) return r.error();
        if (window_.empty()) break;
      }
      const size_t from = static_cast<size_t>(at - window_at_);
      const size_t take = std::min(n - got, window_.size() - from);
      std::memcpy(static_cast<char*>(buf) + got, window_.data() + from, take);
      got += take;
    }
    return got;
  }

  const recording::RecordingInfo& info() const override { return info_; }

 private:
  api::Client& api_;
  std::string sid_;
  recording::RecordingInfo info_;
  bool opened_ = false;
  std::string window_;
  uint64_t window_at_ = 0;
};

}  // namespace

Result<RecordingsPage> list_recordings(api::Client& api, const std::string& after, size_t limit) {
  std::map<std::string, std::string> query{{"limit", std::to_string(limit)}};
  if (!after.empty()) query["after"] = after;
  auto reply = api.call("GET", "/v1/recordings", query);
  if (!reply) return reply.error();
  if (reply->status / 100 != 2) return api::error_from_response(reply->status, reply->body);
  // Nesting bounded first (what is done with a value afterwards recurses);
  // then ordered: the rows keep the server's field order (that of `vigil
  // recordings`).
  std::string why;
  if (!audit::parse_json_bounded(reply->body, &why))
    return Error::of(Errc::data_loss, "the auth service's list of recordings: " + why);
  auto body = nlohmann::ordered_json::parse(reply->body, nullptr, false);
  if (!body.is_object() || !body["recordings"].is_array())
    return Error::of(Errc::data_loss, "the auth service's list of recordings is not one");
  RecordingsPage page;
  for (auto& row : body["recordings"]) page.rows.push_back(std::move(row));
  if (body["next"].is_string()) page.next = body["next"].get<std::string>();
  return page;
}

Result<std::unique_ptr<recording::RecordingSource>> open_remote_recording(api::Client& api,
                                                                          const std::string& sid) {
  auto source = std::make_unique<RemoteSource>(api, sid);
  if (auto r = source->fetch(0); !r) return r.error();
  return std::unique_ptr<recording::RecordingSource>(std::move(source));
}

}  // namespace vigil::client
