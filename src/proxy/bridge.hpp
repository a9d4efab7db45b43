// One SSH channel joined to one socket: bytes move both ways without
// waiting, within the channel's window, through large buffers (no per-byte
// work). The thread that owns the channel's session calls step() whenever
// the session or the socket may have moved; poll_events() says what to wait
// for on the socket, poll_fd() the entry to put in a poll set. EOF travels both ways (channel EOF -> shutdown(SHUT_WR),
// socket EOF -> channel EOF); the bridge is done when both sides are.
#pragma once

#include <libssh/libssh.h>
#include <poll.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/fd.hpp"

namespace vigil::proxy {

inline constexpr size_t kBridgeBuffer = 256 * 1024;
// Per step and direction, so that one busy channel does not starve the
// others of the same thread.
inline constexpr size_t kStepBudget = 4 * 1024 * 1024;

class Bridge {
 public:
  Bridge(ssh_channel channel, Fd socket);  // takes both; the socket is made non-blocking
  ~Bridge();                               // closes the channel (if still open) and the socket
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // Moves what can move now. True when a budget ran out (call again soon).
  bool step();
  short poll_events() const;
  // The socket's poll entry; fd -1 (poll skips it) while nothing on the
  // socket is awaited. poll reports POLLHUP and POLLERR whatever the events
  // asked: a socket whose peer reset or closed, kept in the set while the
  // channel stays open, would end every poll round at once (a busy loop).
  // What moves the bridge then comes from the channel, through the session.
  pollfd poll_fd() const;
  int fd() const { return socket_.get(); }
  bool done() const { return done_; }
  uint64_t bytes_to_socket() const { return to_socket_total_; }
  uint64_t bytes_to_channel() const { return to_channel_total_; }

 private:
  bool channel_to_socket();
  bool socket_to_channel();

  ssh_channel channel_;
  Fd socket_;
  std::vector<char> down_;  // channel -> socket: [down_off_, down_len_) pending
  size_t down_off_ = 0, down_len_ = 0;
  std::vector<char> up_;    // socket -> channel: [up_off_, up_len_) pending
  size_t up_off_ = 0, up_len_ = 0;
  bool channel_eof_ = false;  // the channel sent EOF (socket shut for writing)
  bool socket_eof_ = false;   // the socket read 0 (EOF sent on the channel)
  bool done_ = false;
  uint64_t to_socket_total_ = 0, to_channel_total_ = 0;
};

}  // namespace vigil::proxy
