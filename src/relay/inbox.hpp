// The auth service's side of event delivery: batches of a node's events
// into the cluster's audit store, exactly once and in order per node.
//
// Each stored event is the node's event with three fields set by the
// Inbox: server_id and server_hostname of the authenticated caller (never
// the body's), and relay_seq, the node's sequence number. An event whose
// server_id names another node refuses the whole batch
// (permission_denied): a node cannot write events as another node.
//
// Order per node: a batch that starts at or before the last stored seq has
// its stored prefix skipped (a retry after a lost acknowledgement); one
// that starts after last+1 is refused (failed_precondition, "resend from
// N"). The answer is the seq stored up to (the Ack).
//
// Crash safety, one checkpoint file per node, <state_dir>/<server_id>.json,
// replaced atomically (temporary file, fsync, rename, fsync of the dir):
//   1. the intent {"last":L,"pending":{"first":F,"last":T,"from_ns":..,"to_ns":..}}
//   2. the events appended to the store with Durability::sync
//   3. the commit {"last":T}
// A crash between 1 and 3 (the auth service killed, the store's append
// cut anywhere) leaves the intent. At open() (and before the node's next
// batch when an append failed) the Inbox searches the store over the
// batch's time range, widened to the auth service's clock at the intent
// (a store files lines by its writer's clock, whatever time the events
// carry), for that node's events with relay_seq F..T: the stored
// prefix is the new last, so a resent batch neither doubles nor loses an
// event. Stores keep a batch's lines in order, so what survives is a prefix.
//
// Events are checked before anything is written: a JSON object (nesting
// bounded, audit::kMaxJsonDepth) with string "event" and an RFC 3339 "time",
// at most auditlog::kMaxEventBytes once rewritten.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "auditlog/store.hpp"
#include "common/result.hpp"
#include "relay/wire.hpp"

namespace vigil::relay {

// Who sent the batch, from the caller's verified certificate.
struct Caller {
  std::string server_id;
  std::string server_hostname;
};

struct InboxOptions {
  std::string state_dir;  // the checkpoints: <auth data_dir>/relay/events, created 0700
  // Tests: called after the store's append returned and before the commit
  // (a crash test kills the process here).
  std::function<void()> after_append;
  std::function<int64_t()> now_ns;  // default CLOCK_REALTIME
};

class Inbox {
 public:
  // Finishes any batch a crash left pending (searching `store`).
  static Result<std::unique_ptr<Inbox>> open(auditlog::AuditStore& store, InboxOptions options);

  // Stores the events the node's seq says are new; returns the node's last
  // stored seq.
  Result<uint64_t> accept(const Caller& caller, const Batch& batch);
  // The node's last stored seq (0: none yet).
  Result<uint64_t> last_seq(const std::string& server_id);

 private:
  struct Pending {
    uint64_t first = 0, last = 0;
    int64_t from_ns = 0, to_ns = 0;
  };
  struct Node {
    uint64_t last = 0;
    bool has_pending = false;
    Pending pending;
  };

  Inbox(auditlog::AuditStore& store, InboxOptions options)
      : store_(store), opt_(std::move(options)) {}
  Result<Node*> node_locked(const std::string& server_id);
  Result<void> write_checkpoint(const std::string& server_id, const Node& node);
  Result<void> resolve_pending(const std::string& server_id, Node& node);

  auditlog::AuditStore& store_;
  InboxOptions opt_;
  std::mutex mu_;  // one batch at a time
  std::map<std::string, Node> nodes_;
};

// The event as stored: `json` (one event, without '\n') with server_id,
// server_hostname and relay_seq set, '\n' ended; *time_ns its time.
// invalid_argument / permission_denied as accept() says.
Result<std::string> rewrite_event(std::string_view json, const Caller& caller, uint64_t seq,
                                  int64_t* time_ns);

}  // namespace vigil::relay
