#include "engine/record_order.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>

#include <linux/types.h>

extern "C" {
#include "vigil_events.h"
}

namespace vigil {

void RecordBatch::add(void* owner, std::span<const std::byte> record) {
  items.push_back(Item{owner, bytes.size(), record.size()});
  bytes.insert(bytes.end(), record.begin(), record.end());
}

void RecordBatch::append(const RecordBatch& other) {
  size_t base = bytes.size();
  bytes.insert(bytes.end(), other.bytes.begin(), other.bytes.end());
  for (Item item : other.items) {
    item.offset += base;
    items.push_back(item);
  }
  read_boot_ns = other.read_boot_ns;
}

void RecordOrder::take(RecordBatch&& batch) {
  if (batch.items.empty()) {
    batch.clear();
    spare_.push_back(std::move(batch));
    return;
  }
  size_t n = batch.items.size();
  live_.push_back(Live{std::move(batch), n});
  Live* live = &live_.back();
  incoming_.clear();
  bool sorted = true;
  for (const RecordBatch::Item& item : live->batch.items) {
    uint64_t boot_ns = 0;  // too short for a head: it fails to decode, first
    if (item.size >= sizeof(vigil_record_head))
      std::memcpy(&boot_ns, live->batch.bytes.data() + item.offset + offsetof(vigil_record_head, ktime_ns),
                  sizeof(boot_ns));
    if (!incoming_.empty() && boot_ns < incoming_.back().boot_ns) sorted = false;
    incoming_.push_back({boot_ns, &item, live});
  }
  auto by_time = [](const Held& a, const Held& b) { return a.boot_ns < b.boot_ns; };
  // One ring's records are nearly always in order already.
  if (!sorted) std::stable_sort(incoming_.begin(), incoming_.end(), by_time);
  if (held_.empty() || held_.back().boot_ns <= incoming_.front().boot_ns) {
    held_.insert(held_.end(), incoming_.begin(), incoming_.end());
    return;
  }
  // Held records arrived first: on equal times they go first (stable).
  merged_.clear();
  merged_.reserve(held_.size() + incoming_.size());
  std::merge(held_.begin(), held_.end(), incoming_.begin(), incoming_.end(),
             std::back_inserter(merged_), by_time);
  held_.swap(merged_);
}

void RecordOrder::decode_one(const RecordBatch& batch, const RecordBatch::Item& item,
                             const decode::TimeBase& time, Handler& handler) {
  std::span<const std::byte> record(batch.bytes.data() + item.offset, item.size);
  auto head = decode::head(record);
  if (!head) {
    // The reader checked every head before queueing: a bug if it shows here.
    assert(false && "a record without a head was queued");
    return;
  }
  if (head->kind == Kind::disk) {
    if (auto r = decode::open_into(record, time, event_); !r)
      handler.undecodable(item.owner, head->kind, r.error().message);
    else
      handler.deliver(item.owner, event_);
    return;
  }
  Result<Event> event = Error{""};
  if (head->kind == Kind::command) {
    event = decode::exec(record, time);
  } else {
    event = decode::network(record, time);
  }
  if (!event)
    handler.undecodable(item.owner, head->kind, event.error().message);
  else
    handler.deliver(item.owner, *event);
}

size_t RecordOrder::release(uint64_t until_boot_ns, const decode::TimeBase& time, Handler& handler) {
  size_t n = 0;
  for (; n < held_.size() && held_[n].boot_ns <= until_boot_ns; ++n) {
    const Held& h = held_[n];
    decode_one(h.live->batch, *h.item, time, handler);
    --h.live->remaining;
  }
  held_.erase(held_.begin(), held_.begin() + static_cast<ptrdiff_t>(n));
  // Batches leave oldest first: one still holding a record keeps the later
  // ones (rare: only records out of order across batches do that).
  while (!live_.empty() && live_.front().remaining == 0) {
    RecordBatch batch = std::move(live_.front().batch);
    live_.pop_front();
    batch.clear();
    if (spare_.size() < 4) spare_.push_back(std::move(batch));
  }
  return n;
}

bool RecordOrder::recycle(RecordBatch& out) {
  assert(out.items.empty() && "recycle() would drop the records of the batch it fills");
  if (spare_.empty() || !out.items.empty()) return false;
  out = std::move(spare_.back());
  spare_.pop_back();
  return true;
}

}  // namespace vigil
