#include "privsep/client.hpp"

#include <poll.h>

namespace vigil::privsep {

Result<void> MonitorClient::send(const Request& request) {
  return send_packet(fd_.get(), encode(request));
}

Result<std::pair<Reply, std::vector<Fd>>> MonitorClient::receive() {
  auto packet = recv_packet(fd_.get(), 3);
  if (!packet) return packet.error();
  std::vector<Fd> fds;
  for (int f : packet->fds) fds.emplace_back(f);
  if (packet->closed) return Error::of(Errc::unavailable, "the monitor closed the connection");
  auto reply = decode_reply(packet->bytes);
  if (!reply) return reply.error();
  // Only `opened` carries fds.
  if (!std::holds_alternative<Opened>(reply.value()) && !fds.empty())
    return Error::of(Errc::internal, "the monitor sent fds with a reply that carries none");
  return std::pair<Reply, std::vector<Fd>>{std::move(reply.value()), std::move(fds)};
}

Result<std::pair<Reply, std::vector<Fd>>> MonitorClient::answer() {
  for (;;) {
    auto got = receive();
    if (!got) return got.error();
    if (auto* e = std::get_if<Exited>(&got->first)) {
      exited_.push_back(*e);
      continue;
    }
    return got;
  }
}

Result<void> MonitorClient::read_pending() {
  for (;;) {
    pollfd p{fd_.get(), POLLIN, 0};
    int n = poll(&p, 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return {};
    auto got = receive();
    if (!got) return got.error();
    auto* e = std::get_if<Exited>(&got->first);
    if (!e) return Error::of(Errc::internal, "the monitor sent a reply nobody asked for");
    exited_.push_back(*e);
  }
}

Result<void> MonitorClient::audited(const Request& request) {
  if (auto r = send(request); !r) return r.error();
  auto got = answer();
  if (!got) return got.error();
  if (!std::holds_alternative<Audited>(got->first))
    return Error::of(Errc::internal, "the monitor answered an audit request out of turn");
  return {};
}

Result<bool> MonitorClient::rate_check(Counted proof) {
  if (auto r = send(RateCheck{proof}); !r) return r.error();
  auto got = answer();
  if (!got) return got.error();
  if (auto* a = std::get_if<Allowed>(&got->first)) return a->yes;
  return Error::of(Errc::internal, "the monitor answered rate_check out of turn");
}

Result<std::optional<Refused>> MonitorClient::proxied(const std::string& header) {
  if (auto r = send(Proxied{header}); !r) return r.error();
  auto got = answer();
  if (!got) return got.error();
  if (auto* a = std::get_if<Allowed>(&got->first); a && a->yes) return std::optional<Refused>();
  if (auto* no = std::get_if<Refused>(&got->first)) return std::optional<Refused>(*no);
  return Error::of(Errc::internal, "the monitor answered proxied out of turn");
}

Result<std::variant<LoginOk, Refused>> MonitorClient::login(const std::string& cert_blob,
                                                           const std::string& login) {
  if (auto r = send(Login{cert_blob, login}); !r) return r.error();
  auto got = answer();
  if (!got) return got.error();
  if (auto* ok = std::get_if<LoginOk>(&got->first)) return std::variant<LoginOk, Refused>(*ok);
  if (auto* no = std::get_if<Refused>(&got->first)) return std::variant<LoginOk, Refused>(*no);
  return Error::of(Errc::internal, "the monitor answered login out of turn");
}

Result<std::variant<OpenedSession, Refused>> MonitorClient::open(const OpenSession& request) {
  if (auto r = send(request); !r) return r.error();
  auto got = answer();
  if (!got) return got.error();
  if (auto* no = std::get_if<Refused>(&got->first)) return std::variant<OpenedSession, Refused>(*no);
  auto* yes = std::get_if<Opened>(&got->first);
  if (!yes || yes->channel != request.channel)
    return Error::of(Errc::internal, "the monitor answered open_session out of turn");
  const size_t want = request.pty ? 1 : 3;
  if (got->second.size() != want)
    return Error::of(Errc::internal, "the monitor passed " + std::to_string(got->second.size()) +
                                         " fds for a session, not " + std::to_string(want));
  return std::variant<OpenedSession, Refused>(OpenedSession{*yes, std::move(got->second)});
}

}  // namespace vigil::privsep
