#include "auditlog/event_text.hpp"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "audit/syscall_names.hpp"
#include "audit/text_json.hpp"
#include "audit/text_quote.hpp"
#include "audit/timefmt.hpp"
#include "auditlog/base64url.hpp"
#include "auditlog/timeparse.hpp"

namespace vigil::auditlog {
namespace {

using Json = nlohmann::json;

const std::string* get_string(const Json& ev, const char* key) {
  auto it = ev.find(key);
  return it != ev.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

std::optional<int64_t> get_int(const Json& ev, const char* key) {
  auto it = ev.find(key);
  if (it == ev.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}

bool get_bool(const Json& ev, const char* key) {
  auto it = ev.find(key);
  return it != ev.end() && it->is_boolean() && it->get<bool>();
}

std::optional<int64_t> get_time(const Json& ev, const char* key) {
  const std::string* s = get_string(ev, key);
  return s ? parse_rfc3339(*s) : std::nullopt;
}

void append_int(std::string& out, int64_t v) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

// The exact bytes of a path: from "<key>_base64" when the encoder wrote it
// (the string then has U+FFFD in place of invalid bytes).
std::string exact_bytes(const Json& ev, const char* key, const char* base64_key) {
  if (const std::string* b64 = get_string(ev, base64_key))
    if (auto bytes = decode_base64(*b64)) return *bytes;
  const std::string* s = get_string(ev, key);
  return s ? *s : std::string();
}

std::vector<std::string> exact_array(const Json& ev, const char* key, const char* base64_key) {
  std::vector<std::string> out;
  auto b64 = ev.find(base64_key);
  if (b64 != ev.end() && b64->is_array()) {
    for (const Json& e : *b64) {
      auto bytes = e.is_string() ? decode_base64(e.get_ref<const std::string&>()) : std::nullopt;
      if (!bytes) break;
      out.push_back(std::move(*bytes));
    }
    if (out.size() == b64->size()) return out;
    out.clear();
  }
  auto plain = ev.find(key);
  if (plain != ev.end() && plain->is_array())
    for (const Json& e : *plain)
      if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

// "2023-07-04T16:42:20.540Z": UTC with milliseconds, the date included
// since a search spans days.
void append_time_millis(std::string& out, const Json& ev) {
  if (auto ns = get_time(ev, "time")) {
    const std::string t = audit::format_time(*ns);  // ...SS.uuuuuuZ
    out.append(t, 0, t.size() - 4);
    out += 'Z';
  } else if (const std::string* raw = get_string(ev, "time")) {
    audit::append_value(out, *raw);
  } else {
    out += '-';
  }
}

void append_field(std::string& out, const Json& ev, const char* key) {
  if (const std::string* v = get_string(ev, key)) {
    out += ' ';
    out += key;
    out += '=';
    audit::append_value(out, *v);
  }
}

// " pid=5007 curl:"
void append_process(std::string& out, const Json& ev) {
  if (auto pid = get_int(ev, "pid")) {
    out += " pid=";
    append_int(out, *pid);
  }
  if (const std::string* program = get_string(ev, "program")) {
    out += ' ';
    audit::append_value(out, *program);  // a process names itself (prctl)
  }
  out += ':';
}

// " → ok" or " → ENOENT (-2)"
void append_result(std::string& out, const Json& ev) {
  auto rc = get_int(ev, "return_code");
  if (!rc) return;
  out += " → ";
  if (*rc >= 0) {
    out += "ok";
    return;
  }
  const std::string_view name =
      *rc > -4096 ? audit::errno_name(static_cast<int>(-*rc)) : std::string_view();
  out += name.empty() ? std::string_view("error") : name;
  out += " (";
  append_int(out, *rc);
  out += ')';
}

void append_marks(std::string& out, const Json& ev,
                  std::initializer_list<std::pair<const char*, const char*>> marks) {
  for (const auto& [key, text] : marks) {
    auto it = ev.find(key);
    if (it != ev.end() && it->is_boolean() && it->get<bool>()) out += text;
  }
}

void append_command(std::string& out, const Json& ev) {
  append_process(out, ev);
  out += ' ';
  audit::append_shell_word(out, exact_bytes(ev, "path", "path_base64"));
  for (const std::string& arg : exact_array(ev, "argv", "argv_base64")) {
    out += ' ';
    audit::append_shell_word(out, arg);
  }
  append_result(out, ev);
  append_marks(out, ev,
               {{"argv_truncated", " [argv truncated]"},
                {"path_truncated", " [path truncated]"},
                {"args_lost", " [args lost]"}});
}

void append_disk(std::string& out, const Json& ev) {
  append_process(out, ev);
  out += ' ';
  audit::append_shell_word(out, exact_bytes(ev, "path", "path_base64"));
  if (auto flags = get_int(ev, "flags")) {
    out += ' ';
    audit::append_open_flags(out, static_cast<int32_t>(*flags));
  }
  append_result(out, ev);
  append_marks(out, ev, {{"path_truncated", " [path truncated]"}, {"path_unreadable", " [path unreadable]"}});
  // The file the kernel opened, when the program's words say otherwise.
  std::string kernel = exact_bytes(ev, "kernel_path", "kernel_path_base64");
  if (!kernel.empty() && kernel != exact_bytes(ev, "path", "path_base64")) {
    out += " opened ";
    audit::append_shell_word(out, kernel);
    append_marks(out, ev, {{"kernel_path_truncated", " [kernel path truncated]"}});
  }
}

void append_endpoint(std::string& out, const Json& ev, bool v6, const char* addr_key,
                     const char* port_key) {
  // An IPv6 address holds colons, so the port needs the address in brackets.
  if (v6) out += '[';
  if (const std::string* a = get_string(ev, addr_key)) audit::append_value(out, *a);
  if (v6) out += ']';
  out += ':';
  append_int(out, get_int(ev, port_key).value_or(0));
}

void append_network(std::string& out, const Json& ev) {
  append_process(out, ev);
  const std::string* protocol = get_string(ev, "protocol");
  if (protocol && *protocol == "unix") {
    out += get_bool(ev, "unix_abstract") ? " unix connect abstract " : " unix connect ";
    audit::append_shell_word(out, exact_bytes(ev, "unix_path", "unix_path_base64"));
  } else {
    if (protocol && *protocol == "udp") out += " udp";
    const auto op = get_int(ev, "operation");
    out += op == 1 ? " send " : op == 2 ? " accept " : op == 3 ? " connect result " : " connect ";
    const bool v6 = get_int(ev, "version") == 6;
    if (op == 2) {
      append_endpoint(out, ev, v6, "src_addr", "src_port");
    } else if (const std::string* src = get_string(ev, "src_addr")) {
      audit::append_value(out, *src);
    }
    out += " → ";
    append_endpoint(out, ev, v6, "dst_addr", "dst_port");
    out += v6 ? " v6" : " v4";
    if (const std::string* result = get_string(ev, "result")) {
      out += ": ";
      audit::append_value(out, *result);
      if (*result == "failed") append_result(out, ev);
    }
  }
  if (auto ns = get_int(ev, "net_ns"); ns && *ns) {
    out += " netns=";
    append_int(out, *ns);
  }
  if (auto n = get_int(ev, "forgotten_destinations"); n && *n) {
    out += " [";
    append_int(out, *n);
    out += " destinations forgotten]";
  }
  if (get_int(ev, "action") == 1) out += " denied";
}

void append_session_start(std::string& out, const Json& ev) {
  append_field(out, ev, "sid");
  out += ':';
  auto command = exact_array(ev, "initial_command", "initial_command_base64");
  if (command.empty()) {
    out += " interactive shell";
    return;
  }
  out += " command";
  for (const std::string& word : command) {
    out += ' ';
    audit::append_shell_word(out, word);
  }
}

// " recorded command=3 disk=off network=1": "off" for kinds not recorded.
void append_counts(std::string& out, const Json& ev, const char* key, const char* label) {
  auto counts = ev.find(key);
  if (counts == ev.end() || !counts->is_object()) return;
  auto kinds = ev.find("enhanced_recording_kinds");
  out += ' ';
  out += label;
  for (const auto& [kind, count] : counts->items()) {
    out += ' ';
    audit::append_value(out, kind);
    out += '=';
    const bool off = kinds != ev.end() && kinds->is_array() &&
                     std::find(kinds->begin(), kinds->end(), kind) == kinds->end();
    if (off)
      out += "off";
    else if (count.is_number_integer())
      append_int(out, count.get<int64_t>());
    else
      out += '?';
  }
}

void append_session_end(std::string& out, const Json& ev) {
  append_field(out, ev, "sid");
  out += ':';
  auto start = get_time(ev, "session_start");
  auto stop = get_time(ev, "session_stop");
  int64_t duration_ns;
  // Both are any int64 a log line says: their difference may not fit.
  if (start && stop && *stop >= *start && !__builtin_sub_overflow(*stop, *start, &duration_ns)) {
    const int64_t tenths = duration_ns / 100'000'000;
    out += ' ';
    append_int(out, tenths / 10);
    out += '.';
    append_int(out, tenths % 10);
    out += "s,";
  }
  append_counts(out, ev, "recorded_events", "recorded");
  out += ',';
  append_counts(out, ev, "lost_events", "lost");
  // Why the session did not end cleanly (its recording failed, the node
  // stopped): the one thing about an end a reader must not miss.
  if (const std::string* error = get_string(ev, "error")) {
    out += ", error=";
    audit::append_value(out, *error);
  }
}

// Events of other types: every field but the ones in the head and the
// bookkeeping every event repeats, as key=value.
void append_generic(std::string& out, const Json& ev) {
  static constexpr std::string_view kShown[] = {
      "time", "user",         "login",     "event",           "code",      "ei",
      "uid",  "cluster_name", "namespace", "server_hostname", "server_id",
  };
  for (const auto& [key, value] : ev.items()) {
    if (std::find(std::begin(kShown), std::end(kShown), key) != std::end(kShown)) continue;
    out += ' ';
    audit::append_value(out, key);
    out += '=';
    // dump() recurses once per level: the value is at most
    // audit::kMaxJsonDepth deep (append_event_text parsed it so).
    if (value.is_string())
      audit::append_value(out, value.get_ref<const std::string&>());
    else
      audit::append_value(out, value.dump(-1, ' ', false, Json::error_handler_t::replace));
  }
}

}  // namespace

bool append_event_text(std::string_view json_line, std::string& out) {
  const auto parsed = audit::parse_json_bounded(json_line);
  if (!parsed || !parsed->is_object()) return false;
  const Json& ev = *parsed;
  append_time_millis(out, ev);
  append_field(out, ev, "user");
  append_field(out, ev, "login");
  const std::string* type = get_string(ev, "event");
  out += ' ';
  if (type)
    audit::append_value(out, *type);
  else
    out += "(no event type)";
  const std::string_view t = type ? std::string_view(*type) : std::string_view();
  if (t == "session.command")
    append_command(out, ev);
  else if (t == "session.disk")
    append_disk(out, ev);
  else if (t == "session.network")
    append_network(out, ev);
  else if (t == "session.start")
    append_session_start(out, ev);
  else if (t == "session.end")
    append_session_end(out, ev);
  else
    append_generic(out, ev);
  out += '\n';
  return true;
}

}  // namespace vigil::auditlog
