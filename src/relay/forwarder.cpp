#include "relay/forwarder.hpp"

#include <algorithm>

#include "common/log.hpp"

namespace vigil::relay {

Forwarder::Forwarder(Outbox& outbox, DeliverFn deliver, ForwarderOptions options)
    : outbox_(outbox),
      deliver_(std::move(deliver)),
      opt_(options),
      rng_(options.jitter_seed ? options.jitter_seed : std::random_device{}()) {
  thread_ = std::thread([this] { run(); });
}

Forwarder::~Forwarder() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  outbox_.wake_all();
  if (thread_.joinable()) thread_.join();
}

bool Forwarder::retryable(Errc c) {
  switch (c) {
    case Errc::unavailable:
    case Errc::deadline_exceeded:
    case Errc::resource_exhausted:
    case Errc::internal:
    case Errc::unspecified:
      return true;
    default:
      return false;
  }
}

bool Forwarder::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, d, [&] { return stop_; });
  return !stop_;
}

void Forwarder::run() {
  std::chrono::milliseconds step = opt_.backoff_initial;
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !refused_; });
      if (stop_) return;
    }
    const uint64_t from = outbox_.acked() + 1;
    auto batch = outbox_.read(from, opt_.max_batch_events, opt_.max_batch_bytes);
    if (batch && batch->events.empty()) {
      outbox_.wait_beyond(from - 1, opt_.idle_wait);
      continue;
    }
    Error failure;
    bool ok = false;
    if (!batch) {
      failure = batch.error();
    } else {
      auto acked = deliver_(*batch);
      if (!acked) {
        failure = acked.error();
      } else if (*acked > batch->last_seq()) {
        failure = Error::of(Errc::failed_precondition,
                            "the auth service acknowledged event " + std::to_string(*acked) +
                                " but this node sent only up to " +
                                std::to_string(batch->last_seq()));
      } else if (*acked >= from) {
        if (auto r = outbox_.ack(*acked); !r) {
          failure = r.error();
        } else {
          std::lock_guard lk(mu_);
          delivered_ += *acked - from + 1;
          ++batches_;
          ok = true;
        }
      } else {
        failure = Error::of(Errc::unavailable, "the auth service took none of the batch from " +
                                                   std::to_string(from));
      }
    }
    if (ok) {
      step = opt_.backoff_initial;
      {
        std::lock_guard lk(mu_);
        if (failing_) log::info("relay: delivering audit events to the auth service again");
        failing_ = false;
      }
      cv_.notify_all();
      continue;
    }
    const Errc kind = failure.kind();
    if (!retryable(kind)) {
      log::error("relay: delivery of audit events to the auth service stopped (" +
                 std::string(errc_name(kind)) + "): " + failure.message +
                 "; events keep being spooled in " + outbox_.dir() +
                 " and are sent when delivery resumes");
      std::lock_guard lk(mu_);
      refused_ = true;
      refusal_ = failure;
      last_error_ = failure.message;
      cv_.notify_all();
      continue;
    }
    std::chrono::milliseconds delay;
    {
      std::lock_guard lk(mu_);
      ++retries_;
      if (!failing_)  // the first failure of a streak only
        log::warn("relay: cannot deliver audit events yet (" + std::string(errc_name(kind)) +
                  "): " + failure.message + "; retrying until it answers");
      failing_ = true;
      last_error_ = failure.message;
      std::uniform_int_distribution<int64_t> jitter(step.count() / 2, step.count());
      delay = std::chrono::milliseconds(jitter(rng_));
    }
    step = std::min(step * 2, opt_.backoff_max);
    if (!sleep_for(delay)) return;
  }
}

Result<void> Forwarder::flush_wait(std::chrono::steady_clock::time_point deadline) {
  const uint64_t target = outbox_.last_seq();
  std::unique_lock lk(mu_);
  for (;;) {
    if (outbox_.acked() >= target) return {};
    if (refused_) return refusal_;
    if (std::chrono::steady_clock::now() >= deadline)
      return Error::of(Errc::deadline_exceeded,
                       "relay: events up to " + std::to_string(target) +
                           " are not all delivered yet (acknowledged up to " +
                           std::to_string(outbox_.acked()) + "; last error: " +
                           (last_error_.empty() ? "none" : last_error_) + ")");
    cv_.wait_until(lk, std::min(deadline, std::chrono::steady_clock::now() +
                                              std::chrono::milliseconds(50)));
  }
}

void Forwarder::resume() {
  {
    std::lock_guard lk(mu_);
    refused_ = false;
  }
  cv_.notify_all();
}

ForwarderStats Forwarder::stats() const {
  const OutboxStats o = outbox_.stats();
  std::lock_guard lk(mu_);
  ForwarderStats s;
  s.spooled = o.spooled;
  s.lost = o.lost;
  s.acked_seq = o.acked_seq;
  s.delivered = delivered_;
  s.batches = batches_;
  s.retries = retries_;
  s.refused = refused_;
  s.last_error = last_error_;
  return s;
}

}  // namespace vigil::relay
