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
// Crash safety: one journal for all nodes, <state_dir>/journal.log, and a
// snapshot of every node's state, <state_dir>/state.json. Batches that
// arrive together (from several nodes, on several threads) are stored as
// one group (group commit):
//   1. the group's intents, one line {"intent":[{"node":..,"first":F,
//      "last":T,"from_ns":..,"to_ns":..},...]}, appended and fdatasync'ed
//   2. the group's events appended to the store with Durability::sync (one
//      call, so the store makes them durable with one fsync)
//   3. the acknowledgements answered; then {"commit":[{"node":..,"last":T}]}
//      appended without a sync (an optimisation only: an intent without its
//      commit is resolved as below)
// Two fsyncs a group, whatever the number of nodes and events in it.
// An intent without its commit (the auth service killed anywhere from 1 to
// 3, the store's append cut anywhere) is resolved at open() (and before
// the node's next batch when an append failed) by searching the store over
// the batch's time range, widened to the auth service's clock at the
// intent (a store files lines by its writer's clock, whatever time the
// events carry), for that node's events with relay_seq F..T: the stored
// prefix is the new last, so a resent batch neither doubles nor loses an
// event. Stores keep a batch's lines in order, so what survives is a prefix.
// A journal line torn by a crash (no '\n') was never synced, so no append
// followed it: it is cut off. Any other bad line is damage (data_loss).
// When the journal passes journal_max_bytes, state.json is replaced
// atomically (temporary file, fsync, rename, fsync of the dir) and the
// journal emptied; replaying a journal over a newer snapshot changes
// nothing (a node's last only grows, stale intents are ignored), so a crash
// between the two is harmless. Checkpoints of the first format
// (<state_dir>/<server_id>.json) are read at open and folded into state.json.
//
// Events are checked before anything is written, without re-serialising
// them: a JSON object (validated whole, nesting bounded by
// audit::kMaxJsonDepth, no top-level key twice) with string "event" and an
// RFC 3339 "time", at most auditlog::kMaxEventBytes once stamped. The
// stored line is the node's members as sent, after the three the Inbox
// sets (any the node sent are replaced, also when spelled with escapes).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "auditlog/store.hpp"
#include "common/fd.hpp"
#include "common/result.hpp"
#include "relay/wire.hpp"

namespace vigil::relay {

// Who sent the batch, from the caller's verified certificate.
struct Caller {
  std::string server_id;
  std::string server_hostname;
};

struct InboxOptions {
  std::string state_dir;  // the journal and snapshot: <auth data_dir>/relay/events, created 0700
  // Tests: called after the store's append returned and before the
  // acknowledgement and the commit record (a crash test kills the process here).
  std::function<void()> after_append;
  std::function<int64_t()> now_ns;  // default CLOCK_REALTIME
  size_t journal_max_bytes = 4u << 20;  // then a snapshot, and the journal emptied
  // Tests: called after a snapshot replaced state.json and before the
  // journal is emptied.
  std::function<void()> after_snapshot;
  size_t max_group_batches = 64;  // batches stored together at most
};

struct InboxStats {
  uint64_t groups = 0;   // group commits (2 fsyncs each)
  uint64_t batches = 0;  // batches with new events stored
  uint64_t events = 0;   // events stored
};

class Inbox {
 public:
  // Finishes any batch a crash left pending (searching `store`).
  static Result<std::unique_ptr<Inbox>> open(auditlog::AuditStore& store, InboxOptions options);

  // Stores the events the node's seq says are new; returns the node's last
  // stored seq. Thread-safe: concurrent calls share one group commit.
  Result<uint64_t> accept(const Caller& caller, const Batch& batch);
  // The node's last stored seq (0: none yet).
  Result<uint64_t> last_seq(const std::string& server_id);
  InboxStats stats() const;
  // Batches waiting for the group commit in progress.
  size_t queued() const;

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
  // One accept() call waiting for its group.
  struct Request {
    const std::string* server_id = nullptr;
    uint64_t first_seq = 0;
    std::vector<std::string> lines;  // stamped, seq first_seq + i
    std::vector<int64_t> times;      // each line's event time
    bool done = false;
    Result<uint64_t> result = uint64_t{0};
  };

  Inbox(auditlog::AuditStore& store, InboxOptions options)
      : store_(store), opt_(std::move(options)) {}
  Result<void> load();
  Result<void> replay_journal();
  Result<void> journal_append(const std::string& line, bool sync);
  Result<void> snapshot();
  Result<void> resolve_pending(const std::vector<std::string>& ids);
  void commit_group(std::vector<Request*> group);

  auditlog::AuditStore& store_;
  InboxOptions opt_;
  Fd journal_;
  uint64_t journal_bytes_ = 0;

  // Queue of requests and the leader flag.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Request*> queue_;
  bool leader_ = false;

  // The nodes' state and the journal: held by the leader while it commits.
  mutable std::mutex state_mu_;
  std::map<std::string, Node> nodes_;
  InboxStats stats_;
};

// The event as stored: `json` (one event, without '\n') with server_id,
// server_hostname and relay_seq set, '\n' ended; *time_ns its time.
// invalid_argument / permission_denied as accept() says.
Result<std::string> rewrite_event(std::string_view json, const Caller& caller, uint64_t seq,
                                  int64_t* time_ns);

}  // namespace vigil::relay
