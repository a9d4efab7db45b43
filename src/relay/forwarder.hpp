// Delivers the Outbox to the auth service: one thread, in order, in
// batches bounded in events and bytes, through a callback (the HTTPS client
// plugs in: POST /v1/events, wire.hpp) that answers the sequence number the
// auth service holds everything up to.
//
// Errors of the callback, by kind:
// - unavailable, deadline_exceeded, resource_exhausted, internal,
//   unspecified (the auth service is down, restarting, overloaded): the
//   batch is sent again from the last acknowledged event, after a delay
//   that doubles from backoff_initial up to backoff_max with full jitter
//   (a random delay between half the step and the step).
// - anything else (unauthenticated: the node's identity was revoked;
//   permission_denied; invalid_argument; failed_precondition: the auth
//   service lacks events the node no longer has; data_loss): a permanent
//   refusal. Delivery stops with one error log line that says why; the
//   Outbox keeps spooling (up to its bound) and resume() starts again,
//   e.g. after the node rejoined.
// An acknowledgement beyond the batch's last event is a permanent refusal
// too (the auth service speaks of events this node never sent).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "common/result.hpp"
#include "relay/outbox.hpp"
#include "relay/wire.hpp"

namespace vigil::relay {

// Sends a batch; the answer is the sequence number acknowledged (the auth
// service holds every event of this node up to it).
using DeliverFn = std::function<Result<uint64_t>(const Batch&)>;

struct ForwarderOptions {
  size_t max_batch_events = 1000;
  size_t max_batch_bytes = 1u << 20;  // a longer single event goes alone
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{30'000};
  std::chrono::milliseconds idle_wait{1000};  // re-checks the spool at least this often
  uint64_t jitter_seed = 0;                   // 0: from std::random_device
};

struct ForwarderStats {
  uint64_t spooled = 0;    // from the Outbox
  uint64_t lost = 0;       // from the Outbox
  uint64_t delivered = 0;  // events acknowledged by the auth service, this process
  uint64_t batches = 0;    // batches acknowledged
  uint64_t retries = 0;    // failed attempts that were retried
  uint64_t acked_seq = 0;
  bool refused = false;    // stopped on a permanent refusal
  std::string last_error;  // the last failure's message
};

class Forwarder {
 public:
  // Starts the thread.
  Forwarder(Outbox& outbox, DeliverFn deliver, ForwarderOptions options = {});
  // Stops the thread (a batch in flight is finished or abandoned by its
  // callback; what it carried is sent again next time).
  ~Forwarder();

  // Waits until everything spooled when it was called is acknowledged:
  // deadline_exceeded at the deadline, the refusal's error when delivery
  // stopped on a permanent refusal.
  Result<void> flush_wait(std::chrono::steady_clock::time_point deadline);
  // After a permanent refusal: try again.
  void resume();

  ForwarderStats stats() const;

  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

 private:
  void run();
  bool sleep_for(std::chrono::milliseconds d);  // false when stopping
  static bool retryable(Errc c);

  Outbox& outbox_;
  DeliverFn deliver_;
  ForwarderOptions opt_;
  std::mt19937_64 rng_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // stop, resume, progress
  bool stop_ = false;
  bool refused_ = false;
  bool failing_ = false;  // the last attempt failed (one log line a streak)
  Error refusal_;
  uint64_t delivered_ = 0, batches_ = 0, retries_ = 0;
  std::string last_error_;
  std::thread thread_;
};

}  // namespace vigil::relay
