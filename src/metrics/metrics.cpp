#include "metrics/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <cassert>
#include <chrono>

namespace vigil::metrics {

Registry::Registry() : registry_(std::make_shared<prometheus::Registry>()) {}
Registry::~Registry() = default;

void Registry::on_scrape(std::function<void()> update) {
  std::lock_guard lock(mu_);
  updates_.push_back(std::move(update));
}

void Registry::between_scrapes(const std::function<void()>& change) {
  std::lock_guard lock(mu_);
  change();
}

std::string Registry::serialize() {
  std::lock_guard lock(mu_);
  for (auto& update : updates_) update();
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

namespace {

size_t session_kind_index(std::string_view kind) {
  for (size_t i = 0; i < std::size(kSessionKinds); ++i)
    if (kind == kSessionKinds[i]) return i;
  assert(!"a session kind outside kSessionKinds");
  return 0;
}

template <class T>
prometheus::Family<T>& family(prometheus::Registry& r, const std::string& name,
                              const std::string& help) {
  if constexpr (std::is_same_v<T, prometheus::Counter>)
    return prometheus::BuildCounter().Name(name).Help(help).Register(r);
  else if constexpr (std::is_same_v<T, prometheus::Gauge>)
    return prometheus::BuildGauge().Name(name).Help(help).Register(r);
  else
    return prometheus::BuildHistogram().Name(name).Help(help).Register(r);
}

std::string kind_label(int k) { return std::string(kind_name(static_cast<Kind>(k))); }

}  // namespace

NodeMetrics::NodeMetrics(Registry& registry)
    : logins_refused_(family<prometheus::Counter>(
          registry.prom(), "vigil_logins_refused_total",
          "SSH logins the node refused, by reason (the reason of the auth event)")) {
  auto& r = registry.prom();
  auto& active = family<prometheus::Gauge>(r, "vigil_sessions_active",
                                           "SSH sessions running now, by kind");
  auto& started = family<prometheus::Counter>(r, "vigil_sessions_started_total",
                                              "SSH sessions started (session.start), by kind");
  for (size_t i = 0; i < std::size(kSessionKinds); ++i) {
    active_[i] = &active.Add({{"kind", kSessionKinds[i]}});
    started_[i] = &started.Add({{"kind", kSessionKinds[i]}});
  }
  auto& recorded = family<prometheus::Counter>(
      r, "vigil_events_recorded_total",
      "Enhanced recording events written to the audit log, by kind (session.end's recorded)");
  auto& lost = family<prometheus::Counter>(
      r, "vigil_events_lost_total",
      "Enhanced recording events lost, by kind (the sum of session.end's and "
      "session.leftovers_end's lost)");
  auto& hooks = family<prometheus::Gauge>(
      r, "vigil_hooks_attached", "1 while the BPF hooks of this kind of event are attached");
  auto& ring_used = family<prometheus::Gauge>(
      r, "vigil_ring_buffer_used_bytes", "Bytes waiting in the kernel ring buffer of this kind");
  auto& ring_size = family<prometheus::Gauge>(
      r, "vigil_ring_buffer_size_bytes", "Size of the kernel ring buffer of this kind");
  for (int k = 0; k < kKindCount; ++k) {
    recorded_[k] = &recorded.Add({{"kind", kind_label(k)}});
    lost_[k] = &lost.Add({{"kind", kind_label(k)}});
    hooks_[k] = &hooks.Add({{"kind", kind_label(k)}});
    ring_used_[k] = &ring_used.Add({{"kind", kind_label(k)}});
    ring_size_[k] = &ring_size.Add({{"kind", kind_label(k)}});
  }
  logins_ok_ = &family<prometheus::Counter>(r, "vigil_logins_succeeded_total",
                                            "SSH logins the node let in")
                    .Add({});
  audit_seconds_ = &family<prometheus::Histogram>(
                        r, "vigil_audit_log_write_seconds",
                        "Time one audit event write took (sync writes include the fsync)")
                        .Add({}, prometheus::Histogram::BucketBoundaries{
                                     1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5,
                                     1, 5});
  audit_bytes_ = &family<prometheus::Counter>(r, "vigil_audit_log_written_bytes_total",
                                              "Bytes of audit events written")
                      .Add({});
  recording_bytes_ = &family<prometheus::Counter>(r, "vigil_recording_written_bytes_total",
                                                  "Bytes written to session recordings")
                          .Add({});
  queue_bytes_ = &family<prometheus::Gauge>(
                      r, "vigil_engine_queue_bytes",
                      "Bytes of records read from the rings that wait to be decoded")
                      .Add({});
  queue_records_ = &family<prometheus::Gauge>(
                        r, "vigil_engine_queue_records",
                        "Records read from the rings that wait to be decoded")
                        .Add({});
  spool_backlog_ = &family<prometheus::Gauge>(
                        r, "vigil_spool_backlog_bytes",
                        "Bytes of audit events in this node's spool, not yet taken by the auth "
                        "service (0 for a standalone node)")
                        .Add({});
  spool_backlog_events_ = &family<prometheus::Gauge>(
                               r, "vigil_spool_backlog_events",
                               "Audit events in this node's spool, not yet taken by the auth "
                               "service (0 for a standalone node)")
                               .Add({});
}

void NodeMetrics::session_started(std::string_view kind) {
  size_t i = session_kind_index(kind);
  started_[i]->Increment();
  active_[i]->Increment();
}
void NodeMetrics::session_ended(std::string_view kind) {
  active_[session_kind_index(kind)]->Decrement();
}
void NodeMetrics::event_recorded(Kind kind) { recorded_[static_cast<int>(kind)]->Increment(); }
void NodeMetrics::events_lost(const KindCounts& lost) {
  for (int k = 0; k < kKindCount; ++k)
    if (lost.v[k]) lost_[k]->Increment(static_cast<double>(lost.v[k]));
}
void NodeMetrics::login_succeeded() { logins_ok_->Increment(); }
void NodeMetrics::login_refused(std::string_view reason) {
  // A refusal the front end reports (auth_refused) names its own reason:
  // the series stay bounded whatever it sends.
  bool plain = !reason.empty() && reason.size() <= kMaxReasonBytes;
  for (char c : reason) plain = plain && ((c >= 'a' && c <= 'z') || c == '_');
  std::lock_guard lock(mu_);
  std::string label = plain ? std::string(reason) : "other";
  if (!reasons_.count(label) && reasons_.size() >= kMaxReasons) label = "other";
  reasons_.insert(label);
  logins_refused_.Add({{"reason", label}}).Increment();
}
void NodeMetrics::audit_written(double seconds, size_t bytes) {
  audit_seconds_->Observe(seconds);
  audit_bytes_->Increment(static_cast<double>(bytes));
}
void NodeMetrics::recording_written(size_t bytes) {
  recording_bytes_->Increment(static_cast<double>(bytes));
}
void NodeMetrics::set_hook_attached(Kind kind, bool attached) {
  hooks_[static_cast<int>(kind)]->Set(attached ? 1 : 0);
}
void NodeMetrics::set_ring(Kind kind, uint64_t used_bytes, uint64_t size_bytes) {
  ring_used_[static_cast<int>(kind)]->Set(static_cast<double>(used_bytes));
  ring_size_[static_cast<int>(kind)]->Set(static_cast<double>(size_bytes));
}
void NodeMetrics::set_queue(uint64_t bytes, uint64_t records) {
  queue_bytes_->Set(static_cast<double>(bytes));
  queue_records_->Set(static_cast<double>(records));
}
void NodeMetrics::set_spool_backlog(uint64_t bytes, uint64_t events) {
  spool_backlog_->Set(static_cast<double>(bytes));
  spool_backlog_events_->Set(static_cast<double>(events));
}

void add_process_metrics(Registry& registry, std::string_view version, std::string_view role) {
  auto& r = registry.prom();
  family<prometheus::Gauge>(r, "vigil_build_info", "Always 1; the labels say the version and role")
      .Add({{"version", std::string(version)}, {"role", std::string(role)}})
      .Set(1);
  double now = std::chrono::duration<double>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  family<prometheus::Gauge>(r, "vigil_start_time_seconds",
                            "When this process started, seconds since the Unix epoch")
      .Add({})
      .Set(now);
}

}  // namespace vigil::metrics
