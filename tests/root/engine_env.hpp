// The root tier's shared engine: one Engine for a test binary, started
// before its tests (as root) under a cgroup root of its own, and stopped
// after. A test binary defines it once:
//
//   VIGIL_ROOT_ENGINE("seal", [](EngineOptions&) {});
//
// and its tests use g_engine (null when not root or when the start failed;
// g_start_error says why).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>

#include "engine/engine.hpp"

namespace vigil::testing {

inline Engine* g_engine = nullptr;
inline std::string g_start_error;

class EngineEnvironment : public ::testing::Environment {
 public:
  EngineEnvironment(std::string name, std::function<void(EngineOptions&)> tune)
      : root_path_("/vigil-" + name + "-test-" + std::to_string(getpid())), tune_(std::move(tune)) {}

  void SetUp() override {
    if (geteuid() != 0) return;
    EngineOptions options;
    options.root_path = root_path_;
    if (tune_) tune_(options);
    auto engine = Engine::start(options);
    if (!engine.ok()) {
      g_start_error = engine.error().message;
      return;
    }
    engine_ = std::move(engine.value());
    g_engine = engine_.get();
  }
  void TearDown() override {
    g_engine = nullptr;
    engine_.reset();
    rmdir(("/cgroup2" + root_path_).c_str());
  }

 private:
  std::string root_path_;
  std::function<void(EngineOptions&)> tune_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace vigil::testing

// Variadic: the tuning lambda may hold commas.
#define VIGIL_ROOT_ENGINE(name, ...)                   \
  [[maybe_unused]] auto* const g_engine_environment = \
      ::testing::AddGlobalTestEnvironment(new vigil::testing::EngineEnvironment(name, __VA_ARGS__))
