#include "diag.hpp"

#include <chrono>

#include "common/version.hpp"
#include "engine/engine.hpp"
#include "relay/outbox.hpp"
#include "services/cluster_services.hpp"

namespace vigil::cmd {

Result<void> MeteredEmitter::emit(std::string_view json_line, auditlog::Durability durability) {
  auto start = std::chrono::steady_clock::now();
  auto r = inner_.emit(json_line, durability);
  if (r)
    metrics_.audit_written(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
        json_line.size());
  return r;
}

namespace {

class MeteredSink : public recording::RecordingSink {
 public:
  MeteredSink(std::unique_ptr<recording::RecordingSink> inner, metrics::NodeMetrics& metrics)
      : inner_(std::move(inner)), metrics_(metrics) {}
  Result<void> append(std::string_view bytes) override {
    auto r = inner_->append(bytes);
    if (r) metrics_.recording_written(bytes.size());
    return r;
  }
  Result<void> finish() override { return inner_->finish(); }
  const std::string& name() const override { return inner_->name(); }

 private:
  std::unique_ptr<recording::RecordingSink> inner_;
  metrics::NodeMetrics& metrics_;
};

}  // namespace

Result<std::unique_ptr<recording::RecordingSink>> MeteredRecordings::create(
    const std::string& sid, std::string_view head) {
  auto sink = inner_.create(sid, head);
  if (!sink) return sink.error();
  metrics_.recording_written(head.size());
  return std::unique_ptr<recording::RecordingSink>(
      std::make_unique<MeteredSink>(std::move(*sink), metrics_));
}

Result<std::unique_ptr<NodeDiag>> start_node_diag(const config::Config& cfg) {
  if (cfg.diag_addr.empty()) return std::unique_ptr<NodeDiag>();
  auto where = services::split_listen_addr(cfg.diag_addr);
  if (!where) return Error::of(Errc::invalid_argument,
                               "teleport.diag_addr: " + where.error().message);
  auto diag = std::make_unique<NodeDiag>();
  diag->recording = cfg.ssh.enabled && cfg.ssh.enhanced_recording.enabled;
  metrics::add_process_metrics(diag->registry, kVersion, "node");
  NodeDiag* d = diag.get();
  d->registry.on_scrape([d] {
    if (relay::Outbox* outbox = d->outbox.load()) {
      auto st = outbox->stats();
      d->node.set_spool_backlog(st.spool_bytes, st.last_seq - std::min(st.acked_seq, st.last_seq));
    }
    Engine* engine = d->engine.load();
    if (!engine) return;
    for (int k = 0; k < kKindCount; ++k) {
      Kind kind = static_cast<Kind>(k);
      d->node.set_hook_attached(kind, engine->attached(kind));
      d->node.set_ring(kind, engine->ring_used_bytes(kind),
                       uint64_t{engine->ring_pages()[k]} * config::kPageSize);
    }
    auto q = engine->queued();
    d->node.set_queue(q.bytes, q.records);
  });
  auto server = metrics::DiagServer::start(
      where->first, where->second, diag->registry, [d] {
        std::vector<std::string> unmet;
        if (d->recording && !d->engine.load())
          unmet.push_back("the recording engine has not started (BPF not loaded yet)");
        if (!d->joined) unmet.push_back("the auth service has not answered the first heartbeat");
        if (!d->listening) unmet.push_back("the SSH port is not listening yet");
        return unmet;
      });
  if (!server) return server.error();
  diag->server = std::move(*server);
  return diag;
}

}  // namespace vigil::cmd
