#include "recording/store.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "recording/file_store.hpp"
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
  if (name.empty()) return Error::of(Errc::invalid_argument, "give a session id or a recording file");
  if (is_file_name(name)) return name;
  FileRecordingStore store(data_dir);
  auto sid = store.resolve(name);
  if (!sid) return sid.error();
  return recording_path(data_dir, *sid);
}

bool is_file_name(const std::string& name) {
  return name.find('/') != std::string::npos || ends_with(name, kFileExtension);
}

}  // namespace vigil::recording
