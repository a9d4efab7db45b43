#include "auditlog/session_log.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "audit/encode.hpp"
#include "audit/uuid.hpp"
#include "auditlog/search.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"

namespace vigil::auditlog {
namespace {

using Json = nlohmann::json;

constexpr int kJournalVersion = 1;

Json counts_json(const KindCounts& c) { return Json::array({c.v[0], c.v[1], c.v[2]}); }

Result<void> write_all(int fd, const std::string& text) {
  if (ftruncate(fd, 0) != 0) return Error::sys("cannot truncate the session journal");
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = pwrite(fd, text.data() + done, text.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error::sys("cannot write the session journal");
    done += static_cast<size_t>(n);
  }
  if (fdatasync(fd) != 0) return Error::sys("cannot sync the session journal");
  return {};
}

}  // namespace

std::string journal_dir(const std::string& data_dir) { return data_dir + "/sessions"; }

SessionLog::SessionLog(audit::SessionMeta meta, Emitter& log, Copy copy)
    : meta_(std::move(meta)), log_(log), copy_(std::move(copy)) {}

SessionLog::~SessionLog() {
  // A journal still here means the session has not ended: left for recovery
  // (the lock goes with the fd, so the next start can take it).
}

Result<void> SessionLog::keep_journal(const std::string& dir, bool interactive, KindSet kinds) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Error::sys("cannot create the session journal directory " + dir);
  std::lock_guard lock(mu_);
  journal_path_ = dir + "/" + meta_.sid + ".json";
  journal_.reset(open(journal_path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                      0600));
  if (!journal_) return Error::sys("cannot create the session journal " + journal_path_);
  if (flock(journal_.get(), LOCK_EX | LOCK_NB) != 0)
    return Error::sys("cannot lock the session journal " + journal_path_);
  interactive_ = interactive;
  kinds_ = kinds;
  return {};
}

void SessionLog::write_journal_locked(const audit::SessionEnd* ended) {
  if (!journal_) return;
  Json j = {{"version", kJournalVersion},
            {"sid", meta_.sid},
            {"cluster_name", meta_.cluster_name},
            {"server_hostname", meta_.server_hostname},
            {"server_id", meta_.server_id},
            {"namespace", meta_.namespace_name},
            {"login", meta_.login},
            {"user", meta_.user},
            {"remote_addr", meta_.remote_addr},
            {"start_ns", start_ns_},
            {"interactive", interactive_},
            {"kinds", kinds_.bits()}};
  if (ended) {
    j["ended"] = {{"time_ns", ended->time_ns},
                  {"leftover_processes", ended->leftover_processes},
                  {"recorded", counts_json(ended->recorded)},
                  {"lost", counts_json(ended->lost)}};
  }
  if (auto r = write_all(journal_.get(), j.dump() + "\n"); !r)
    log::error("session " + meta_.sid + ": " + r.error().message);
}

void SessionLog::drop_journal_locked() {
  if (!journal_) return;
  unlink(journal_path_.c_str());  // before the lock goes: recovery checks the link
  journal_.reset();
}

void SessionLog::start(int64_t time_ns, std::vector<std::string> command,
                       std::vector<std::string> sealed) {
  std::lock_guard lock(mu_);
  start_ns_ = time_ns;
  write_journal_locked(nullptr);
  line_.clear();
  audit::encode_session_start({time_ns, std::move(command), std::move(sealed)}, meta_, ei_++,
                              audit::new_uuid(), line_);
  deliver(time_ns, Durability::sync);
}

void SessionLog::event(const Event& ev) {
  std::lock_guard lock(mu_);
  line_.clear();
  audit::encode_event(ev, meta_, ei_++, audit::new_uuid(), line_);
  deliver(ev.time_ns, Durability::buffered);
}

void SessionLog::exec(const audit::ExecEnd& exec) {
  std::lock_guard lock(mu_);
  line_.clear();
  audit::encode_exec(exec, meta_, ei_++, audit::new_uuid(), line_);
  deliver(exec.time_ns, Durability::buffered);
}

void SessionLog::end(const audit::SessionEnd& end) {
  std::lock_guard lock(mu_);
  line_.clear();
  audit::encode_session_end(end, meta_, ei_++, audit::new_uuid(), line_);
  deliver(end.time_ns, Durability::sync);
  if (end.leftover_processes && !end.leftovers_killed) write_journal_locked(&end);
  else drop_journal_locked();
}

void SessionLog::leftovers_end(const audit::LeftoversEnd& end) {
  std::lock_guard lock(mu_);
  line_.clear();
  audit::encode_leftovers_end(end, meta_, ei_++, audit::new_uuid(), line_);
  deliver(end.time_ns, Durability::sync);
  drop_journal_locked();
}

std::string SessionLog::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

void SessionLog::deliver(int64_t time_ns, Durability durability) {
  if (auto r = log_.emit(line_, durability); !r && error_.empty()) {
    error_ = r.error().message;
    log::error("session " + meta_.sid + ": audit log: " + error_);
  }
  if (copy_) copy_(time_ns, line_);
}

namespace {

struct LogTally {
  KindCounts recorded;
  uint64_t next_ei = 0;
  int64_t last_ns = 0;
};

// What of the session reached the audit log.
Result<LogTally> tally(AuditStore& log, const std::string& sid, int64_t start_ns) {
  LogTally t;
  Query q;
  q.sid = sid;
  q.from_ns = start_ns - int64_t{86400} * 1'000'000'000;  // clocks may disagree
  q.limit = 1000;
  for (;;) {
    auto page = log.search(q);
    if (!page) return page.error();
    for (const auto& line : page->lines) {
      Json e = Json::parse(line, nullptr, false);
      if (!e.is_object()) continue;
      if (e.contains("ei") && e["ei"].is_number_unsigned())
        t.next_ei = std::max(t.next_ei, e["ei"].get<uint64_t>() + 1);
      std::string type = e.value("event", "");
      if (type == "session.command") ++t.recorded[Kind::command];
      else if (type == "session.disk") ++t.recorded[Kind::disk];
      else if (type == "session.network") ++t.recorded[Kind::network];
    }
    if (page->next.empty()) break;
    q.after = page->next;
  }
  return t;
}

// One journal: its event written and synced, then the journal removed.
Result<bool> recover_one(const std::string& path, AuditStore& log,
                         recording::RecordingStore& recordings) {
  Fd fd(open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return errno == ENOENT ? Result<bool>(false) : Error::sys("cannot open " + path);
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return false;  // its recorder is alive
  // Ended and removed between our open and lock: nothing to recover.
  struct stat held{}, named{};
  if (fstat(fd.get(), &held) != 0 || held.st_nlink == 0 || stat(path.c_str(), &named) != 0 ||
      named.st_ino != held.st_ino)
    return false;
  // What cannot be read never will be: moved aside, so it is reported once.
  auto unreadable = [&](const std::string& why) -> Result<bool> {
    rename(path.c_str(), (path + ".bad").c_str());
    return Error{why + " (moved aside as " + path + ".bad)"};
  };
  if (held.st_size > (1 << 20)) return unreadable("not a session journal (too large)");
  std::string text(static_cast<size_t>(held.st_size), '\0');
  if (pread(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
    return Error::sys("cannot read " + path);
  Json j = Json::parse(text, nullptr, false);
  if (!j.is_object() || j.value("version", 0) != kJournalVersion || !j.contains("sid"))
    return unreadable("not a session journal Vigil can read");
  audit::SessionMeta meta;
  try {
    meta.sid = j.at("sid").get<std::string>();
    meta.cluster_name = j.at("cluster_name").get<std::string>();
    meta.server_hostname = j.at("server_hostname").get<std::string>();
    meta.server_id = j.at("server_id").get<std::string>();
    meta.namespace_name = j.at("namespace").get<std::string>();
    meta.login = j.at("login").get<std::string>();
    meta.user = j.at("user").get<std::string>();
    meta.remote_addr = j.at("remote_addr").get<std::string>();
  } catch (const Json::exception& e) {
    return unreadable(e.what());
  }
  int64_t start_ns = j.value("start_ns", int64_t{0});
  auto t = tally(log, meta.sid, start_ns);
  if (!t) return t.error();
  // The last sign of life: the journal's or the recording's last write.
  int64_t stop_ns = int64_t{held.st_mtim.tv_sec} * 1'000'000'000 + held.st_mtim.tv_nsec;
  if (auto rec = recordings.info(meta.sid)) stop_ns = std::max(stop_ns, rec->updated_ns);

  std::string line;
  if (j.contains("ended") && j["ended"].is_object()) {
    audit::LeftoversEnd end;
    end.time_ns = clock::realtime_ns();
    end.processes = j["ended"].value("leftover_processes", size_t{0});
    end.killed = true;  // by the guard when the recorder died, or at its next start
    end.recorded = t->recorded;
    end.recovered = true;
    audit::encode_leftovers_end(end, meta, t->next_ei, audit::new_uuid(), line);
  } else {
    audit::SessionEnd end;
    end.time_ns = clock::realtime_ns();
    end.start_ns = start_ns;
    end.stop_ns = std::max(stop_ns, start_ns);
    end.interactive = j.value("interactive", false);
    end.enhanced_recording = true;
    end.participants = {meta.user};
    end.kinds = KindSet(j.value("kinds", 0u));
    end.recorded = t->recorded;
    end.recovered = true;
    audit::encode_session_end(end, meta, t->next_ei, audit::new_uuid(), line);
  }
  if (auto r = log.emit(line, Durability::sync); !r) return r.error();
  // Its recording's writer died with the recorder (a session that ended
  // leaves its recording complete, so this is for the one that had not).
  if (auto r = recordings.mark_interrupted(meta.sid); !r && r.error().kind() != Errc::not_found)
    vigil::log::warn("session " + meta.sid + ": " + r.error().message);
  unlink(path.c_str());
  return true;
}

}  // namespace

Result<size_t> recover_sessions(const std::string& data_dir, AuditStore& log,
                                recording::RecordingStore& recordings,
                                std::vector<std::string>* warnings) {
  std::string dir = journal_dir(data_dir);
  DIR* d = opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return size_t{0};
    return Error::sys("cannot read the session journals in " + dir);
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0) names.push_back(name);
  }
  closedir(d);
  size_t recovered = 0;
  for (const auto& name : names) {
    std::string path = dir + "/" + name;
    auto r = recover_one(path, log, recordings);
    if (r && *r) {
      ++recovered;
      log::warn("session " + name.substr(0, name.size() - 5) +
                " had not ended when its recorder stopped: wrote its end, marked recovered");
    } else if (!r) {
      std::string message = "session journal " + path + ": " + r.error().message;
      if (warnings) warnings->push_back(message);
      log::warn(message);
    }
  }
  return recovered;
}

}  // namespace vigil::auditlog
