// The diagnostics of `vigil start` (teleport.diag_addr): its metrics
// registry, the listener, and the decorators that count what the node
// writes (audit events, recordings). docs/operations.md lists the metrics.
#pragma once

#include <memory>
#include <string>

#include "auditlog/emitter.hpp"
#include "config/config.hpp"
#include "metrics/diag_server.hpp"
#include "metrics/metrics.hpp"
#include "recording/recording_store.hpp"

namespace vigil {
class Engine;
namespace relay {
class Outbox;
}
}

namespace vigil::cmd {

// Counts bytes and times each write of the audit events it passes on.
class MeteredEmitter : public auditlog::Emitter {
 public:
  MeteredEmitter(auditlog::Emitter& inner, metrics::NodeMetrics& metrics)
      : inner_(inner), metrics_(metrics) {}
  Result<void> emit(std::string_view json_line, auditlog::Durability durability) override;
  Result<void> flush() override { return inner_.flush(); }

 private:
  auditlog::Emitter& inner_;
  metrics::NodeMetrics& metrics_;
};

// Counts the bytes appended to the recordings it creates.
class MeteredRecordings : public recording::RecordingStore {
 public:
  MeteredRecordings(recording::RecordingStore& inner, metrics::NodeMetrics& metrics)
      : inner_(inner), metrics_(metrics) {}
  Result<std::unique_ptr<recording::RecordingSink>> create(const std::string& sid,
                                                           std::string_view head) override;
  Result<std::unique_ptr<recording::RecordingSource>> open(const std::string& sid) override {
    return inner_.open(sid);
  }
  Result<recording::RecordingInfo> info(const std::string& sid) override {
    return inner_.info(sid);
  }
  Result<std::vector<recording::RecordingInfo>> list() override { return inner_.list(); }
  Result<void> mark_interrupted(const std::string& sid) override {
    return inner_.mark_interrupted(sid);
  }
  std::string where() const override { return inner_.where(); }

 private:
  recording::RecordingStore& inner_;
  metrics::NodeMetrics& metrics_;
};

// A node's diagnostics: off (null from start_node_diag) unless diag_addr is set.
struct NodeDiag {
  metrics::Registry registry;
  metrics::NodeMetrics node{registry};
  std::unique_ptr<metrics::DiagServer> server;
  // What /readyz reports, set by `vigil start` as it comes up.
  std::atomic<bool> listening{false};   // the SSH port is open
  std::atomic<bool> joined{true};       // a cluster node: the first heartbeat went through
  std::atomic<Engine*> engine{nullptr};  // for the engine gauges, once started
  std::atomic<relay::Outbox*> outbox{nullptr};  // a cluster node's spool
  bool recording = false;               // enhanced recording on: the engine must be up

  // Before the engine or the spool goes away: no scrape reads them after.
  void forget_sources() {
    registry.between_scrapes([this] {
      engine = nullptr;
      outbox = nullptr;
    });
  }
};

// Listens on cfg.diag_addr (null when it is empty) with the node's metrics.
Result<std::unique_ptr<NodeDiag>> start_node_diag(const config::Config& cfg);

}  // namespace vigil::cmd
