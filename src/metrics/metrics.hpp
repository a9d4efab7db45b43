// What a `vigil` process tells Prometheus (docs/operations.md, "Monitor"):
// one registry per process, families named vigil_*, counters *_total, base
// units (seconds, bytes). Label values come from fixed sets only (kinds of
// events and sessions, refusal reasons): never a user, login, address or
// any other value a client chooses, so a scrape exposes no secret and the
// number of series is bounded.
//
//   metrics::Registry registry;
//   metrics::NodeMetrics node(registry);
//   node.session_started("exec");                 // from the monitor
//   registry.on_scrape([&] { node.set_ring(...); });  // gauges read at scrape time
//   std::string text = registry.serialize();       // Prometheus text format 0.0.4
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "event/event.hpp"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace vigil::metrics {

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  prometheus::Registry& prom() { return *registry_; }
  // Runs before every serialize(): the place to read gauges that are state
  // (ring fill, hooks attached) rather than events.
  void on_scrape(std::function<void()> update);
  // Runs `change` while no scrape runs: how the owner of what an on_scrape
  // update reads takes it away.
  void between_scrapes(const std::function<void()>& change);
  // Every family, in the Prometheus text exposition format.
  std::string serialize();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::mutex mu_;  // updates_ and one scrape at a time
  std::vector<std::function<void()>> updates_;
};

// The kinds of SSH session a node counts ("session kinds"): a shell with a
// terminal, an exec request, the sftp subsystem.
inline constexpr const char* kSessionKinds[] = {"interactive", "exec", "sftp"};

// The SSH node's metrics (vigil start with ssh_service enabled).
class NodeMetrics {
 public:
  explicit NodeMetrics(Registry& registry);

  // `kind` is one of kSessionKinds (anything else is a bug).
  void session_started(std::string_view kind);
  void session_ended(std::string_view kind);
  void event_recorded(Kind kind);
  void events_lost(const KindCounts& lost);
  void login_succeeded();
  // `reason` is a refusal name from a fixed set (sshcert::refusal_name,
  // unknown_login, access_denied), never text a client sent.
  // A reason that is not [a-z_]{1,40}, or past kMaxReasons distinct ones,
  // is counted as "other": at most kMaxReasons series, "other" included.
  void login_refused(std::string_view reason);
  static constexpr size_t kMaxReasons = 32;
  static constexpr size_t kMaxReasonBytes = 40;
  void audit_written(double seconds, size_t bytes);
  void recording_written(size_t bytes);

  // Read at scrape time (Registry::on_scrape).
  void set_hook_attached(Kind kind, bool attached);
  void set_ring(Kind kind, uint64_t used_bytes, uint64_t size_bytes);
  void set_queue(uint64_t bytes, uint64_t records);
  // A node of a cluster: what its spool holds that the auth service has not taken.
  void set_spool_backlog(uint64_t bytes, uint64_t events);

 private:
  prometheus::Family<prometheus::Counter>& logins_refused_;
  std::mutex mu_;  // logins_refused_'s Add (a new reason makes a series)
  std::set<std::string> reasons_;  // under mu_
  prometheus::Gauge* active_[3];
  prometheus::Counter* started_[3];
  prometheus::Counter* recorded_[kKindCount];
  prometheus::Counter* lost_[kKindCount];
  prometheus::Counter* logins_ok_;
  prometheus::Histogram* audit_seconds_;
  prometheus::Counter* audit_bytes_;
  prometheus::Counter* recording_bytes_;
  prometheus::Gauge* hooks_[kKindCount];
  prometheus::Gauge* ring_used_[kKindCount];
  prometheus::Gauge* ring_size_[kKindCount];
  prometheus::Gauge* queue_bytes_;
  prometheus::Gauge* queue_records_;
  prometheus::Gauge* spool_backlog_;
  prometheus::Gauge* spool_backlog_events_;
};

// Process-wide facts every vigil process exposes: vigil_build_info and
// vigil_start_time_seconds.
void add_process_metrics(Registry& registry, std::string_view version, std::string_view role);

}  // namespace vigil::metrics
