// fork_bench: what the session mark costs every fork of the host.
//
// `storm fork N` (N × fork + _exit + wait) runs outside every session in two
// modes, alternately, R times each:
//   detached  the engine is started, no session is live: nothing attached
//   marking   a session recording network only is live: the fork hook
//             (tp_btf/sched_process_fork) runs on every fork; the network
//             hook does not fire in a fork storm and no syscall tracepoint
//             is attached, so the difference is the fork hook's
// and reports the median time per fork in each and their ratio.
//   fork_bench [--forks N] [--repeat R] [--storm PATH]
// Exit status: 0 when measured, 1 when the benchmark broke, 2 on bad usage.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/engine.hpp"

using namespace vigil;

namespace {

// Runs the storm as a child of this process (in no session); its loop time.
long long run_storm(const std::string& storm, long forks) {
  std::string cmd = storm + " fork " + std::to_string(forks);
  FILE* out = popen(cmd.c_str(), "r");
  if (!out) return -1;
  long long ns = -1;
  if (fscanf(out, "%lld", &ns) != 1) ns = -1;
  if (pclose(out) != 0) return -1;
  return ns;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  long forks = 20000;
  int repeat = 7;
  std::string storm = VIGIL_BENCH_STORM;
  CLI::App app{"fork_bench: the cost of the session mark's fork hook on every fork"};
  app.add_option("--forks", forks, "forks per storm")->check(CLI::Range(1L, 10000000L));
  app.add_option("--repeat", repeat, "runs per mode; the median is reported")
      ->check(CLI::Range(1, 1000));
  app.add_option("--storm", storm, "the storm program (bench/storm.c)");
  CLI11_PARSE(app, argc, argv);

  EngineOptions options;
  options.root_path = "/vigil-fork-bench-" + std::to_string(getpid());
  auto engine = Engine::start(options);
  if (!engine) {
    std::fprintf(stderr, "fork_bench: %s\n", engine.error().message.c_str());
    return 1;
  }
  std::vector<double> detached, marking;
  for (int rep = 0; rep < repeat; ++rep) {
    (*engine)->settle();
    if ((*engine)->marks_attached()) {
      std::fprintf(stderr, "fork_bench: the fork hook is attached with no session live\n");
      return 1;
    }
    long long bare = run_storm(storm, forks);
    auto s = (*engine)->open_session({"fork-bench-" + std::to_string(rep), KindSet(0b100)},
                                     [](const Event&) {});
    if (!s || !(*engine)->marks_attached()) {
      std::fprintf(stderr, "fork_bench: cannot open a session with the fork hook attached\n");
      return 1;
    }
    long long hooked = run_storm(storm, forks);
    if (auto r = (*engine)->close_session(**s); !r) {
      std::fprintf(stderr, "fork_bench: %s\n", r.error().message.c_str());
      return 1;
    }
    if (bare < 0 || hooked < 0) {
      std::fprintf(stderr, "fork_bench: the storm failed (%s)\n", storm.c_str());
      return 1;
    }
    detached.push_back(static_cast<double>(bare) / forks);
    marking.push_back(static_cast<double>(hooked) / forks);
    std::printf("run %d: detached %.0f ns/fork, marking %.0f ns/fork\n", rep + 1,
                detached.back(), marking.back());
  }
  double d = median(detached), m = median(marking);
  std::printf("fork + _exit + wait outside every session, median of %d runs of %ld forks:\n"
              "  detached %.0f ns, marking %.0f ns: %.3fx\n",
              repeat, forks, d, m, m / d);
  return 0;
}
