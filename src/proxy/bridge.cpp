#include "proxy/bridge.hpp"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace vigil::proxy {

Bridge::Bridge(ssh_channel channel, Fd socket)
    : channel_(channel), socket_(std::move(socket)), down_(kBridgeBuffer), up_(kBridgeBuffer) {
  int flags = fcntl(socket_.get(), F_GETFL);
  fcntl(socket_.get(), F_SETFL, flags | O_NONBLOCK);
}

Bridge::~Bridge() {
  if (channel_) {
    if (ssh_channel_is_open(channel_)) ssh_channel_close(channel_);
    ssh_channel_free(channel_);
  }
}

short Bridge::poll_events() const {
  if (done_) return 0;
  short events = 0;
  if (down_off_ < down_len_) events |= POLLOUT;
  // Read the socket only while the channel can take it; a full window is
  // lifted by the peer's WINDOW_ADJUST, which wakes the session's poll.
  if (!socket_eof_ && up_off_ == up_len_ && ssh_channel_window_size(channel_) > 0) events |= POLLIN;
  return events;
}

pollfd Bridge::poll_fd() const {
  const short events = poll_events();
  return {events ? socket_.get() : -1, events, 0};
}

bool Bridge::channel_to_socket() {
  size_t moved = 0;
  while (moved < kStepBudget) {
    if (down_off_ < down_len_) {
      ssize_t n = ::send(socket_.get(), down_.data() + down_off_, down_len_ - down_off_, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return false;
        done_ = true;  // the socket's peer is gone: nothing more can be delivered
        return false;
      }
      down_off_ += static_cast<size_t>(n);
      moved += static_cast<size_t>(n);
      to_socket_total_ += static_cast<uint64_t>(n);
      continue;
    }
    down_off_ = down_len_ = 0;
    if (channel_eof_) return false;
    int n = ssh_channel_read_nonblocking(channel_, down_.data(), static_cast<uint32_t>(down_.size()), 0);
    if (n > 0) {
      down_len_ = static_cast<size_t>(n);
      continue;
    }
    if (n == SSH_ERROR || n == SSH_EOF || ssh_channel_is_eof(channel_) || ssh_channel_is_closed(channel_)) {
      channel_eof_ = true;
      shutdown(socket_.get(), SHUT_WR);
    }
    return false;
  }
  return true;
}

bool Bridge::socket_to_channel() {
  size_t moved = 0;
  while (moved < kStepBudget) {
    if (up_off_ < up_len_) {
      if (ssh_channel_is_closed(channel_)) {
        done_ = true;
        return false;
      }
      uint32_t window = ssh_channel_window_size(channel_);
      if (window == 0) return false;
      uint32_t n = static_cast<uint32_t>(std::min<size_t>(window, up_len_ - up_off_));
      int w = ssh_channel_write(channel_, up_.data() + up_off_, n);
      if (w == SSH_ERROR) {
        done_ = true;
        return false;
      }
      if (w <= 0) return false;
      up_off_ += static_cast<size_t>(w);
      moved += static_cast<size_t>(w);
      to_channel_total_ += static_cast<uint64_t>(w);
      continue;
    }
    up_off_ = up_len_ = 0;
    if (socket_eof_) return false;
    ssize_t n = ::read(socket_.get(), up_.data(), up_.size());
    if (n > 0) {
      up_len_ = static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    // EOF, or the socket failed: the channel hears EOF either way.
    socket_eof_ = true;
    if (ssh_channel_is_open(channel_)) ssh_channel_send_eof(channel_);
    return false;
  }
  return true;
}

bool Bridge::step() {
  if (done_) return false;
  bool more = channel_to_socket();
  if (!done_) more = socket_to_channel() || more;
  // Both ways ended, or the channel is gone and what it sent is delivered.
  if ((channel_eof_ && socket_eof_ && down_off_ == down_len_) ||
      (ssh_channel_is_closed(channel_) && down_off_ == down_len_ && channel_eof_))
    done_ = true;
  return more && !done_;
}

}  // namespace vigil::proxy
