// The engine's worker half, apart from the engine so that it runs (and is
// tested and benchmarked) without BPF: raw ring records in, events out in
// time order.
//
//   RecordBatch batch;                      // the reader fills it
//   batch.add(session, record);
//   order.take(std::move(batch));           // the worker takes it whole
//   order.release(until_boot_ns, time, handler);
//
// Each kernel ring is in order, but across rings (and across CPUs writing
// one ring) a record can arrive after a younger one: records wait here until
// the reader has seen everything older than `until_boot_ns`. Nothing is
// decoded or copied while it waits: the batches stay as the reader filled
// them, and a record is decoded into one reused Event just before it is
// handed on, so a storm of opens costs no allocation per event.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "engine/decode.hpp"
#include "event/event.hpp"

namespace vigil {

// Records as the reader copies them out of the kernel rings, in ring order.
struct RecordBatch {
  struct Item {
    void* owner;         // who the record is for (the engine's Session), opaque here
    size_t offset;       // of the record in bytes
    size_t size;
  };
  std::vector<std::byte> bytes;
  std::vector<Item> items;
  uint64_t read_boot_ns = 0;  // the rings held every older record when read

  // Copies the record (a command's carries its argv and paths).
  void add(void* owner, std::span<const std::byte> record);
  // Appends another batch's records after these (read_boot_ns becomes its).
  void append(const RecordBatch& other);
  void clear() {
    bytes.clear();
    items.clear();
  }
};

class RecordOrder {
 public:
  // Where released records go, on the worker's thread.
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void deliver(void* owner, const Event& event) = 0;
    // A record that does not decode: it is counted as lost by the caller.
    virtual void undecodable(void* owner, Kind kind, const std::string& why) = 0;
  };

  // Takes the reader's batch; its records join the ones held, in time order
  // (records of equal time keep the order they arrived in).
  void take(RecordBatch&& batch);
  // Hands on, in time order, every held record whose kernel time is at most
  // `until_boot_ns` (UINT64_MAX: all of them), each decoded with `time`.
  // Returns how many were released.
  size_t release(uint64_t until_boot_ns, const decode::TimeBase& time, Handler& handler);
  // Records taken and not yet released.
  size_t held() const { return held_.size(); }
  // A batch whose records were all released, emptied with its capacity
  // kept, for the reader to fill again (no allocation, no page faults in a
  // storm), given only to an `out` that holds no records. False when there
  // is none.
  bool recycle(RecordBatch& out);

 private:
  struct Live {
    RecordBatch batch;
    size_t remaining;  // records not yet released
  };
  struct Held {
    uint64_t boot_ns;
    const RecordBatch::Item* item;
    Live* live;
  };
  void decode_one(const RecordBatch& batch, const RecordBatch::Item& item,
                  const decode::TimeBase& time, Handler& handler);

  std::deque<Live> live_;        // batches with records held, oldest first
  std::vector<Held> held_;       // sorted by time, stable
  std::vector<Held> incoming_;   // scratch: a new batch's records
  std::vector<Held> merged_;     // scratch
  std::vector<RecordBatch> spare_;  // released batches, emptied
  Event event_;                  // reused for every disk record
};

}  // namespace vigil
