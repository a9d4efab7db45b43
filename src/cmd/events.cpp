// vigil events: search the audit log under data_dir (the file back end),
// a page at a time, as JSON lines or as text for people.
#include <time.h>

#include <cstdio>
#include <memory>
#include <set>
#include <string>

#include "audit/text_quote.hpp"
#include "common/clock.hpp"
#include "audit/timefmt.hpp"
#include "auditlog/event_text.hpp"
#include "auditlog/file_log.hpp"
#include "auditlog/search.hpp"
#include "auditlog/timeparse.hpp"
#include "commands.hpp"

namespace vigil::cmd {
namespace {

struct EventsArgs {
  DataDirOptions data;
  std::string from, to;
  std::string types;  // "session.command,session.end"
  std::string sid, user, login;
  size_t limit = 100;
  std::string order = "asc";
  std::string format = "text";
  std::string after;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "vigil events: %s\n", message.c_str());
  return kVigilFailed;
}


// RFC 3339 with every digit the instant has, so a continuation command
// means exactly the same range.
std::string exact_time(int64_t ns) {
  std::string t = audit::format_time(ns);  // ...SS.uuuuuuZ
  const int64_t below_micro = ((ns % 1000) + 1000) % 1000;
  if (below_micro != 0) {
    t.pop_back();
    t += static_cast<char>('0' + below_micro / 100);
    t += static_cast<char>('0' + below_micro / 10 % 10);
    t += static_cast<char>('0' + below_micro % 10);
    t += 'Z';
  }
  return t;
}

Result<std::set<std::string>> parse_types(const std::string& list) {
  std::set<std::string> types;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string type = list.substr(start, end - start);
    if (type.empty())
      return Error{"--type: empty event type in \"" + list +
                   "\" (give names separated by commas: session.command,session.end)"};
    types.insert(std::move(type));
    start = end + 1;
  }
  return types;
}

void add_option_word(std::string& line, const char* flag, const std::string& value) {
  if (value.empty()) return;
  line += ' ';
  line += flag;
  line += ' ';
  audit::append_shell_word(line, value);
}

// The command that prints the next page: the same query, with relative
// times (-15m) turned into the instants they meant this time.
std::string continuation_command(const EventsArgs& args, const auditlog::Query& q) {
  std::string line = "vigil events";
  add_option_word(line, "-c", args.data.config_file);
  add_option_word(line, "--data-dir", args.data.data_dir);
  if (!args.from.empty()) add_option_word(line, "--from", exact_time(q.from_ns));
  if (!args.to.empty()) add_option_word(line, "--to", exact_time(q.to_ns));
  add_option_word(line, "--type", args.types);
  add_option_word(line, "--sid", args.sid);
  add_option_word(line, "--user", args.user);
  add_option_word(line, "--login", args.login);
  if (args.limit != 100) add_option_word(line, "--limit", std::to_string(args.limit));
  if (args.order != "asc") add_option_word(line, "--order", args.order);
  if (args.format != "text") add_option_word(line, "--format", args.format);
  return line;
}

int events(const EventsArgs& args) {
  auto cfg = args.data.resolve();
  if (!cfg) return fail(cfg.error().message);

  auditlog::Query q;
  const int64_t now = clock::realtime_ns();
  if (!args.from.empty()) {
    auto t = auditlog::parse_time_arg(args.from, now);
    if (!t) return fail("--from: " + t.error().message);
    q.from_ns = *t;
  }
  if (!args.to.empty()) {
    auto t = auditlog::parse_time_arg(args.to, now);
    if (!t) return fail("--to: " + t.error().message);
    q.to_ns = *t;
  }
  if (q.from_ns > q.to_ns)
    return fail("--from " + args.from + " is after --to " + args.to + ": nothing can match");
  if (!args.types.empty()) {
    auto types = parse_types(args.types);
    if (!types) return fail(types.error().message);
    q.types = std::move(*types);
  }
  q.sid = args.sid;
  q.user = args.user;
  q.login = args.login;
  q.limit = args.limit;
  q.descending = args.order == "desc";
  q.after = args.after;

  auto store = auditlog::FileLog::open_for_search(cfg->data_dir);
  if (!store) return fail(store.error().message);
  auto page = (*store)->search(q);
  if (!page) {
    if (page.error().err == EINVAL && !args.after.empty())
      return fail("--after: " + page.error().message);
    return fail(page.error().message);
  }
  for (const std::string& w : page->warnings)
    std::fprintf(stderr, "vigil events: warning: %s\n", w.c_str());

  std::string out;
  for (const std::string& line : page->lines) {
    if (args.format == "json" || !auditlog::append_event_text(line, out)) {
      out += line;
      out += '\n';
    }
    if (out.size() >= (1 << 16)) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (std::fflush(stdout) != 0) return fail("cannot write the results to stdout");
  if (!page->next.empty())
    std::fprintf(stderr, "more: %s --after %s\n", continuation_command(args, q).c_str(),
                 page->next.c_str());
  return 0;
}

}  // namespace

Subcommand add_events(CLI::App& app) {
  auto args = std::make_shared<EventsArgs>();
  auto* sub = app.add_subcommand("events", "search the audit log (oldest first by default)");
  args->data.add_to(sub);
  const char* time_forms =
      "RFC 3339 (2026-11-27T10:00:00Z), a date (2026-11-27: its midnight UTC), now, or a time "
      "before now (-30s, -15m, -2h, -7d, -1w)";
  sub->add_option("--from", args->from, std::string("events at or after T: ") + time_forms)
      ->option_text("T");
  sub->add_option("--to", args->to, std::string("events at or before T: ") + time_forms)
      ->option_text("T");
  sub->add_option("--type", args->types,
                  "event types, comma-separated (session.command,session.disk,session.network,"
                  "session.start,session.end, ...)");
  sub->add_option("--sid", args->sid, "only this session");
  sub->add_option("--user", args->user, "only this cluster user");
  sub->add_option("--login", args->login, "only this OS login");
  sub->add_option("--limit", args->limit, "events per page (default 100)")
      ->check(CLI::Range(size_t{1}, size_t{1'000'000}));
  sub->add_option("--order", args->order, "asc (oldest first, default) or desc")
      ->check(CLI::IsMember({"asc", "desc"}));
  sub->add_option("--format", args->format, "text (default, for people) or json (the raw lines)")
      ->check(CLI::IsMember({"text", "json"}));
  sub->add_option("--after", args->after,
                  "continue after the page that printed this key (see the \"more:\" line)");
  return {sub, [args] { return events(*args); }};
}

}  // namespace vigil::cmd
