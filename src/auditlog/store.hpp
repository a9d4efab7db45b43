// The audit store: where audit events are kept and searched, behind one
// interface so that the back end is a choice of configuration. Today's back
// ends: `FileLog` (file_log.hpp, day files under <data_dir>/log, the
// embedded default) and `MemoryAuditStore` (memory_store.hpp, one process's
// memory). A PostgreSQL or object-storage back end implements the same
// calls and joins the contract suite (tests/unit/auditlog_store_contract_test.cpp),
// which states what every back end promises; docs/architecture.md says how.
//
// The contract, for every back end:
// - Events are complete JSON lines (check_event_line); a line the framing
//   refuses, or longer than kMaxEventBytes, is stored nowhere (invalid_argument).
// - emit()/append() with Durability::sync return success only once the
//   events survive a crash of the writer; buffered ones within the back
//   end's flush interval, at once after flush().
// - An event is stored whole or not at all: a writer that dies in the middle
//   of an append leaves no part of a line that search would return.
// - search() sees every event whose append or flush has returned, from any
//   handle on the same storage (another process's too), in (time, position)
//   order, newest first when asked; Page::next continues it, and following
//   the keys returns every matching event exactly once, events appended
//   meanwhile at later positions included.
// - A stored event that cannot be read as one (corrupt) is skipped and named
//   in Page::warnings, never returned; a bad query or continuation key is an
//   Errc::invalid_argument error.
// - Thread-safe: any number of threads append and search at once.
// One session's events are a search with Query::sid (recovery counts them so).
#pragma once

#include <span>
#include <string_view>

#include "auditlog/emitter.hpp"
#include "auditlog/search.hpp"
#include "common/result.hpp"

namespace vigil::auditlog {

class AuditStore : public Emitter {
 public:
  // Appends a batch in order: each line as emit() would, the batch checked
  // whole first (one bad line refuses the batch, nothing stored). Events of
  // a batch keep their order among themselves.
  virtual Result<void> append(std::span<const std::string_view> lines,
                              Durability durability = Durability::buffered) = 0;

  // One page of the events that match, and the key of the next page.
  virtual Result<Page> search(const Query& query) = 0;
};

}  // namespace vigil::auditlog
