// consumer_bench: the engine's user-space consumer without BPF. Synthetic
// disk records shaped like engine_bench's open storm (one file opened over
// and over: requested and kernel path, comm "storm") go through what the
// engine's threads do with a ring record, stage by stage:
//
//   copy     the reader: each record copied into a batch (RecordBatch::add)
//   order    + the worker: batches ordered by time with the engine's window
//              (RecordOrder), each record decoded into the reused event
//   encode   + the sink of `vigil record`: an audit JSON line per event, a
//              fresh uid each (audit::encode_event), into a reused buffer
//   write    + that buffer written to /dev/null in 64 KiB blocks
//
// and, as the baseline of the same run, the worker as it was before
// RecordOrder ("before": a new Event per record, decoded at once, sorted by
// index and moved into the next pass's vector) with the same sink. Reports
// events/s and µs per event, the median of --repeat runs, and the ratio of
// the full path to the baseline. No timing is asserted: it is a benchmark.
#include <fcntl.h>
#include <linux/types.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "audit/encode.hpp"
#include "audit/uuid.hpp"
#include "common/fd.hpp"
#include "engine/decode.hpp"
#include "engine/record_order.hpp"

extern "C" {
#include "vigil_events.h"
}

using namespace vigil;

namespace {

constexpr uint64_t kWindowNs = 2'000'000;  // the engine's reorder window
constexpr uint64_t kGapNs = 1'000;         // between two opens: ~1M/s as in the storm

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

std::vector<std::byte> storm_record(const std::string& path) {
  vigil_open_record rec;
  std::memset(&rec, 0, offsetof(vigil_open_record, data));
  rec.head.kind = VIGIL_KIND_DISK;
  rec.head.session = 1;
  rec.head.cgroup_id = 12345;
  rec.head.pid = rec.head.tid = 4242;
  rec.head.ppid = 4200;
  rec.head.audit_session = 7;
  std::strcpy(rec.head.comm, "storm");
  rec.open_flags = O_RDONLY;
  rec.path_len = rec.kernel_path_len = path.size();
  std::vector<std::byte> out(offsetof(vigil_open_record, data) + 2 * (path.size() + 1));
  std::memcpy(out.data(), &rec, offsetof(vigil_open_record, data));
  std::memcpy(out.data() + offsetof(vigil_open_record, data), path.c_str(), path.size() + 1);
  std::memcpy(out.data() + offsetof(vigil_open_record, data) + path.size() + 1, path.c_str(),
              path.size() + 1);
  return out;
}

void set_time(std::vector<std::byte>& rec, uint64_t boot_ns) {
  std::memcpy(rec.data() + offsetof(vigil_record_head, ktime_ns), &boot_ns, sizeof(boot_ns));
}

// What `vigil record` does per event (engine_bench's AuditSink).
class Sink {
 public:
  explicit Sink(bool write_out) : write_(write_out), devnull_(open("/dev/null", O_WRONLY | O_CLOEXEC)) {
    meta_.cluster_name = "bench";
    meta_.server_hostname = "bench-host";
    meta_.server_id = audit::new_uuid();
    meta_.sid = audit::new_uuid();
    meta_.login = "root";
    meta_.user = "bench";
  }
  void event(const Event& ev) {
    uid_.clear();
    audit::append_uuid(uid_);
    audit::encode_event(ev, meta_, index_++, uid_, buf_);
    if (buf_.size() >= (1 << 16)) flush();
  }
  void flush() {
    if (write_ && !buf_.empty()) (void)!write(devnull_.get(), buf_.data(), buf_.size());
    bytes_ += buf_.size();
    buf_.clear();
  }
  uint64_t bytes() const { return bytes_; }

 private:
  bool write_;
  Fd devnull_;
  audit::SessionMeta meta_;
  std::string buf_, uid_;
  uint64_t index_ = 0, bytes_ = 0;
};

enum Stage { kCopy, kOrder, kEncode, kWrite, kBefore, kStages };
const char* const kStageNames[kStages] = {"copy", "order", "encode", "write", "before"};

class Handler : public RecordOrder::Handler {
 public:
  explicit Handler(Sink* sink) : sink_(sink) {}
  void deliver(void*, const Event& ev) override {
    ++delivered;
    if (sink_) sink_->event(ev);
  }
  void undecodable(void*, Kind, const std::string&) override { ++bad; }
  uint64_t delivered = 0, bad = 0;

 private:
  Sink* sink_;
};

struct Run {
  double seconds = 0;
  uint64_t delivered = 0;
};

// The pipeline up to `stage`, `events` records in batches of `batch` (one
// reader pass each, the watermark one window behind the newest record).
Run run(Stage stage, long events, int batch_size, std::vector<std::byte> rec) {
  Sink sink(stage == kWrite || stage == kBefore);
  Handler handler(stage >= kEncode ? &sink : nullptr);
  RecordOrder order;
  decode::TimeBase time = decode::TimeBase::now();
  RecordBatch batch;
  uint64_t t = 1'000'000'000;
  Run out;
  // The worker before RecordOrder, for the baseline.
  struct Pending {
    Event event;
  };
  std::vector<Pending> pending;
  std::vector<std::pair<int64_t, uint32_t>> index;
  double start = now_s();
  for (long done = 0; done < events;) {
    order.recycle(batch);
    int n = static_cast<int>(std::min<long>(batch_size, events - done));
    for (int i = 0; i < n; ++i) {
      t += kGapNs;
      set_time(rec, t);
      batch.add(nullptr, rec);
    }
    done += n;
    bool last = done == events;
    uint64_t until = last ? UINT64_MAX : t - kWindowNs;
    if (stage == kCopy) {
      out.delivered += batch.items.size();
      batch.clear();
      continue;
    }
    if (stage == kBefore) {
      for (const auto& item : batch.items) {
        auto ev = decode::open(std::span(batch.bytes.data() + item.offset, item.size), time);
        if (ev) pending.push_back({std::move(*ev)});
      }
      batch.clear();
      int64_t until_ns = last ? INT64_MAX : time.to_realtime(until);
      index.clear();
      for (uint32_t i = 0; i < pending.size(); ++i) index.push_back({pending[i].event.time_ns, i});
      std::stable_sort(index.begin(), index.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      size_t k = 0;
      for (; k < index.size() && index[k].first <= until_ns; ++k) {
        handler.deliver(nullptr, pending[index[k].second].event);
      }
      std::vector<Pending> rest;
      rest.reserve(pending.size() - k);
      for (size_t j = k; j < index.size(); ++j) rest.push_back(std::move(pending[index[j].second]));
      pending.swap(rest);
      sink.flush();
      continue;
    }
    order.take(std::move(batch));
    batch = RecordBatch();
    order.release(until, time, handler);
    sink.flush();
  }
  out.seconds = now_s() - start;
  if (stage != kCopy) out.delivered = handler.delivered;
  if (handler.bad || out.delivered != static_cast<uint64_t>(events)) {
    std::fprintf(stderr, "consumer_bench: %s delivered %llu of %ld events (%llu undecodable)\n",
                 kStageNames[stage], static_cast<unsigned long long>(out.delivered), events,
                 static_cast<unsigned long long>(handler.bad));
    std::exit(1);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  long events = 1'000'000;
  int batch = 780;  // a quarter of the default disk ring in storm records: one wake-up
  int repeat = 5;
  std::string path = "/tmp/vigil-bench-open-AbCdEf";
  CLI::App app{"consumer_bench: the engine's consumer (copy, order+decode, encode, write) without BPF"};
  app.add_option("--events", events, "records per run")->check(CLI::Range(1000L, 100000000L));
  app.add_option("--batch", batch, "records per reader pass")->check(CLI::Range(1, 1000000));
  app.add_option("--repeat", repeat, "runs per stage; the median is reported")->check(CLI::Range(1, 100));
  app.add_option("--path", path, "the opened file's name in each record")
      ->check([](const std::string& p) {
        return p.empty() || p.size() >= VIGIL_PATH_MAX ? std::string("use 1 to 4095 bytes") : "";
      });
  CLI11_PARSE(app, argc, argv);

  auto rec = storm_record(path);
  std::printf("consumer_bench: %ld open records of %zu bytes, %d per reader pass, median of %d runs\n",
              events, rec.size(), batch, repeat);
  std::printf("| stage | events/s | µs per event |\n|---|---|---|\n");
  double full = 0, before = 0;
  for (int stage = 0; stage < kStages; ++stage) {
    std::vector<double> secs;
    for (int r = 0; r < repeat; ++r) secs.push_back(run(static_cast<Stage>(stage), events, batch, rec).seconds);
    std::sort(secs.begin(), secs.end());
    double s = secs[secs.size() / 2];
    if (stage == kWrite) full = s;
    if (stage == kBefore) before = s;
    std::printf("| %s | %.0f | %.3f |\n", kStageNames[stage], events / s, s / events * 1e6);
  }
  std::printf("\nfull path (write) against the worker before RecordOrder (before), same run: %.2fx the "
              "time (%.2fx the events/s)\n",
              full / before, before / full);
  return 0;
}
