// Where the file back end keeps recordings (file_store.hpp):
// <data_dir>/log/records/<sid>.vrec, one per session, and <sid>.vrec.status.
#pragma once

#include <string>
#include <vector>

#include "common/result.hpp"

namespace vigil::recording {

std::string records_dir(const std::string& data_dir);
std::string recording_path(const std::string& data_dir, const std::string& sid);

// Creates records_dir (and its parents) when missing, mode 0750.
Result<void> prepare_records_dir(const std::string& data_dir);

// The recording a user named: a file path when the name has a '/' or ends
// in .vrec, else a session id or a unique prefix of one in records_dir.
Result<std::string> find_recording(const std::string& data_dir, const std::string& sid_or_file);

// Whether a name a user gave is a file (it has a '/' or ends in .vrec)
// rather than a session id.
bool is_file_name(const std::string& name);

// Every *.vrec file in records_dir (none when it does not exist).
Result<std::vector<std::string>> list_recordings(const std::string& data_dir);

}  // namespace vigil::recording
