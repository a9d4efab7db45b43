// A real PostgreSQL server for the tests of the PostgreSQL back ends,
// started once per test binary at first use (initdb + pg_ctl from Debian's
// postgresql package, in a temporary directory, on the loopback port the
// suite owns) and stopped when the binary exits.
//
// As root it runs as the system user postgres (the server refuses root);
// otherwise as the user running the tests. Clients authenticate over TCP
// with SCRAM and a password that only the password file in the server's
// directory holds (PGPASSFILE is set to it for the process), so the tests
// go through the same credential path as a deployment.
#pragma once

#include <fcntl.h>
#include <glob.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace vigil::test {

class PostgresServer {
 public:
  static constexpr const char* kUser = "vigil_test";

  // The binary's server on `port` (31500-31999), started at first call.
  // nullptr and *error set when it cannot start (error says what to do).
  static PostgresServer* shared(int port, std::string* error, bool fsync = false) {
    static std::mutex mu;
    static std::unique_ptr<PostgresServer> server;
    static std::string failure;
    std::lock_guard lk(mu);
    if (!server && failure.empty()) {
      auto s = std::unique_ptr<PostgresServer>(new PostgresServer(port));
      failure = s->start(fsync);
      if (failure.empty()) {
        server = std::move(s);
        static PostgresServer* to_stop = server.get();
        std::atexit([] { to_stop->stop(); });
      }
    }
    if (!failure.empty()) {
      *error = failure;
      return nullptr;
    }
    return server.get();
  }

  // postgresql://vigil_test@127.0.0.1:<port>/<db> (no password: it comes
  // from PGPASSFILE).
  std::string uri(const std::string& db) const {
    return "postgresql://" + std::string(kUser) + "@127.0.0.1:" + std::to_string(port_) + "/" + db;
  }
  int port() const { return port_; }
  const std::string& passfile() const { return passfile_; }

  // Creates a database (fresh storage for a test); its name is returned.
  std::string create_database(const std::string& name) {
    std::string out;
    psql("postgres", "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)", &out);
    if (!psql("postgres", "CREATE DATABASE " + name, &out)) {
      fprintf(stderr, "postgres test server: CREATE DATABASE %s: %s\n", name.c_str(), out.c_str());
      std::abort();
    }
    return name;
  }

  // Runs SQL with psql as the tests' user; false (out: its output) on failure.
  bool psql(const std::string& db, const std::string& sql, std::string* out) const {
    return run({bindir_ + "/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                std::to_string(port_), "-U", kUser, "-d", db, "-c", sql},
               out, /*as_server_user=*/false);
  }

  // Stops the server now (pg_ctl stop) or starts it again: the tests of
  // what a client does when the database goes away and comes back.
  bool restart_stopped(bool stop_only) {
    std::string out;
    if (!run({bindir_ + "/pg_ctl", "-D", data_, "-m", "fast", "-w", "stop"}, &out, true))
      return false;
    if (stop_only) return true;
    return start_server(&out);
  }
  bool start_again() {
    std::string out;
    return start_server(&out);
  }

 private:
  explicit PostgresServer(int port) : port_(port) {}

  static std::string find_bindir() {
    glob_t g{};
    std::string best;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i) best = g.gl_pathv[i];  // sorted: the newest last
    globfree(&g);
    if (best.empty()) return {};
    return best.substr(0, best.size() - std::string("/initdb").size());
  }

  // Runs argv (as the server's user when asked and root), output to *out.
  bool run(const std::vector<std::string>& argv, std::string* out, bool as_server_user) const {
    std::vector<std::string> args;
    if (as_server_user && geteuid() == 0) args = {"/usr/sbin/runuser", "-u", "postgres", "--"};
    args.insert(args.end(), argv.begin(), argv.end());
    const std::string log = dir_ + "/cmd.out";
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      int null = ::open("/dev/null", O_RDONLY);
      if (null >= 0) dup2(null, 0);
      if (chdir(dir_.c_str()) != 0) _exit(126);
      std::vector<char*> cargv;
      for (auto& a : args) cargv.push_back(const_cast<char*>(a.c_str()));
      cargv.push_back(nullptr);
      execv(cargv[0], cargv.data());
      _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    std::ifstream in(log);
    out->assign(std::istreambuf_iterator<char>(in), {});
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  bool start_server(std::string* out) {
    const std::string opts = "-c port=" + std::to_string(port_) +
                             " -c listen_addresses=127.0.0.1 -c unix_socket_directories=" + dir_ +
                             " -c max_connections=300 -c fsync=" + (fsync_ ? "on" : "off") +
                             " -c synchronous_commit=" + (fsync_ ? "on" : "off");
    return run({bindir_ + "/pg_ctl", "-D", data_, "-l", dir_ + "/server.log", "-o", opts, "-w",
                "-t", "60", "start"},
               out, true);
  }

  std::string start(bool fsync) {
    fsync_ = fsync;
    bindir_ = find_bindir();
    if (bindir_.empty())
      return "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): run "
             "scripts/deps.sh as root, which installs Debian's postgresql";
    char tmpl[] = "/tmp/vigil-pg-XXXXXX";
    if (!mkdtemp(tmpl)) return "mkdtemp failed";
    dir_ = tmpl;
    starter_ = getpid();
    if (geteuid() == 0) {
      passwd* pw = getpwnam("postgres");
      if (!pw) return "no system user postgres (the postgresql package makes it): run scripts/deps.sh";
      if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) return "chown of " + dir_ + " failed";
    }
    chmod(dir_.c_str(), 0755);
    // The password: in a file for initdb (the server's side) and in a
    // password file for the clients (PGPASSFILE), nowhere else.
    const std::string password = "t" + std::to_string(getpid()) + "-" + std::to_string(random());
    const std::string pwfile = dir_ + "/pw";
    {
      std::ofstream(pwfile) << password << "\n";
      chmod(pwfile.c_str(), 0644);
    }
    passfile_ = dir_ + "/pgpass";
    {
      std::ofstream(passfile_) << "127.0.0.1:" << port_ << ":*:" << kUser << ":" << password << "\n";
      chmod(passfile_.c_str(), 0600);
    }
    setenv("PGPASSFILE", passfile_.c_str(), 1);
    data_ = dir_ + "/data";
    std::string out;
    if (!run({bindir_ + "/initdb", "-D", data_, "-U", kUser, "--pwfile=" + pwfile,
              "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C",
              "-N"},
             &out, true))
      return "initdb failed: " + out;
    ::unlink(pwfile.c_str());
    if (!start_server(&out)) {
      std::string log;
      std::ifstream in(dir_ + "/server.log");
      log.assign(std::istreambuf_iterator<char>(in), {});
      return "pg_ctl start on port " + std::to_string(port_) + " failed (another server there?): " +
             out + log;
    }
    started_ = true;
    return {};
  }

  void stop() {
    if (getpid() != starter_) return;  // a forked child exiting leaves it alone
    std::string out;
    if (started_)
      run({bindir_ + "/pg_ctl", "-D", data_, "-m", "immediate", "-w", "stop"}, &out, true);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  const int port_;
  bool fsync_ = false;
  bool started_ = false;
  pid_t starter_ = 0;
  std::string bindir_, dir_, data_, passfile_;
};

}  // namespace vigil::test
