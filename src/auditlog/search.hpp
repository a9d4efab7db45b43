// Searching the file audit log: the library call behind `vigil events`,
// for the cluster API and the web UI too.
//
// Reads every server directory under <data_dir>/log and the day files that
// can hold events of the time range (a day file may hold events up to a
// day older than its day, written late, or a few minutes newer, clocks
// disagreeing), reads each line and returns the matching ones ordered by
// (time, file, byte offset), a page at a time.
// Lines that cannot be read as an event (torn, not JSON, no "time", nested
// deeper than audit::kMaxJsonDepth, longer than 16 MiB) are skipped and
// reported with their file and line; the search never stops at them. A file
// being appended to is fine: its unfinished last line is left out (and
// reported). Only regular files are read: a FIFO, device or symbolic link
// named like a day file is reported and left out (it could block or never end).
//
// Speed: a light scan finds each line's top-level "time", "event", "sid",
// "user" and "login"; only lines that could be returned are then parsed
// fully. So a line the query rules out is skipped without checking the
// rest of its JSON, and a malformed one among them may go unreported.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace vigil::auditlog {

struct Query {
  // Bounds on the event's "time", both inclusive; the defaults leave the
  // range open.
  int64_t from_ns = std::numeric_limits<int64_t>::min();
  int64_t to_ns = std::numeric_limits<int64_t>::max();
  std::set<std::string> types;  // "event" values; empty: every type
  std::string sid;              // exact matches; empty: any
  std::string user;
  std::string login;
  size_t limit = 100;       // events per page, at least 1
  bool descending = false;  // newest first
  std::string after;        // Page::next of the previous page; empty: the first page
};

struct Page {
  std::vector<std::string> lines;     // the matching events as stored, without '\n'
  std::string next;                   // continuation key; empty when no more events match
  // "log/<uuid>/<day>.log:<line> (byte <offset>): skipped ..." (capped)
  std::vector<std::string> warnings;
  size_t skipped = 0;                 // lines skipped in the files read
};

// Repeating the query with after = next returns every matching event
// exactly once, across day files and among events with the same time
// (events appended meanwhile with a later position included). An error is
// returned for a bad query (limit 0, an `after` that is not a key) or when
// <data_dir>/log cannot be read; unreadable day files become warnings.
Result<Page> search(const std::string& data_dir, const Query& query);

class Searcher;

// The filter, order, paging and continuation keys of search(), for a back
// end that keeps lines elsewhere than in day files: it hands over each
// stored line with where it is (a source name and a position that grows
// with every line appended there) and takes the page. Every back end built
// on it pages exactly as the file back end does.
class LineSearch {
 public:
  // Checks the query as search() does (limit, continuation key).
  // label_prefix goes before the source in warnings.
  static Result<LineSearch> begin(const Query& query, std::string label_prefix = "");
  LineSearch(LineSearch&&) noexcept;
  LineSearch& operator=(LineSearch&&) noexcept;
  ~LineSearch();

  // line without its '\n'; line_no counts from 1 within the source.
  void add(std::string_view line, const std::string& source, uint64_t position,
           uint64_t line_no);
  // How many of the lines added so far the page may return (at most
  // limit + 1: the extra one makes the next key). A back end that reads
  // its lines in order, a batch at a time, stops once this is limit + 1.
  size_t matched() const;
  Page finish();

 private:
  LineSearch();
  std::unique_ptr<Searcher> searcher_;
};

// For a back end with its own index (PostgreSQL): the fields search
// filters on, read from a line exactly as search reads them, so that a row's
// indexed columns and the search agree. invalid_argument (why) when the line
// has no RFC 3339 "time" or is not a JSON object. A field the line does not
// hold as a top-level string is nullopt.
struct IndexFields {
  int64_t time_ns = 0;
  std::optional<std::string> event, sid, user, login;
};
Result<IndexFields> index_fields(std::string_view line);

// Where a continuation key points: past (time_ns, source, position) in the
// order of results. nullopt for an empty key; invalid_argument for one
// that is not a key.
struct KeyPosition {
  int64_t time_ns = 0;
  std::string source;
  uint64_t position = 0;
};
Result<std::optional<KeyPosition>> continuation_position(const Query& query);

}  // namespace vigil::auditlog
