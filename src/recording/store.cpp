#include "recording/store.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "recording/format.hpp"

namespace vigil::recording {
namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string records_dir(const std::string& data_dir) { return data_dir + "/log/records"; }

std::string recording_path(const std::string& data_dir, const std::string& sid) {
  return records_dir(data_dir) + "/" + sid + kFileExtension;
}

Result<void> prepare_records_dir(const std::string& data_dir) {
  std::string path;
  for (std::string_view part :
       {std::string_view(data_dir), std::string_view("/log"), std::string_view("/records")}) {
    path += part;
    if (mkdir(path.c_str(), 0750) != 0 && errno != EEXIST)
      return Error::sys("cannot create " + path);
  }
  return {};
}

Result<std::vector<std::string>> list_recordings(const std::string& data_dir) {
  std::vector<std::string> paths;
  const std::string dir = records_dir(data_dir);
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec == std::errc::no_such_file_or_directory) return paths;
  if (ec) return Error{"cannot list " + dir + ": " + ec.message(), ec.value()};
  for (const auto& entry : it) {
    std::string p = entry.path().string();
    if (ends_with(p, kFileExtension)) paths.push_back(std::move(p));
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

Result<std::string> find_recording(const std::string& data_dir, const std::string& name) {
  if (name.empty()) return Error{"give a session id or a recording file"};
  if (name.find('/') != std::string::npos || ends_with(name, kFileExtension)) return name;
  const std::string exact = recording_path(data_dir, name);
  struct stat st {};
  if (stat(exact.c_str(), &st) == 0) return exact;

  auto all = list_recordings(data_dir);
  if (!all) return all.error();
  std::vector<std::string> matches;
  const std::string prefix = records_dir(data_dir) + "/" + name;
  for (const auto& p : *all)
    if (p.compare(0, prefix.size(), prefix) == 0) matches.push_back(p);
  if (matches.size() == 1) return matches.front();
  if (matches.empty())
    return Error{"no recording of session " + name + " in " + records_dir(data_dir) +
                 " (list them with `vigil recordings`)"};
  return Error{"session id " + name + " is ambiguous: " + std::to_string(matches.size()) +
               " recordings start with it"};
}

}  // namespace vigil::recording
