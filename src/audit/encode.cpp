#include "audit/encode.hpp"

#include <variant>

#include "audit/json.hpp"

namespace vigil::audit {
namespace {

// Each encoder lists its fields in the alphabetical order they are written
// in; debug builds assert that order (json.cpp).

// "addr.remote" sorts after "action" and before every other key.
void remote_addr(JsonObject& o, const SessionMeta& meta) {
  if (!meta.remote_addr.empty()) o.string("addr.remote", meta.remote_addr);
}

void encode_command(const Event& ev, const CommandEvent& cmd, const SessionMeta& meta,
                    uint64_t ei, std::string_view uid, std::string& out) {
  JsonObject o(out);
  remote_addr(o, meta);
  if (cmd.args_lost) o.boolean("args_lost", true);
  o.bytes_array("argv", "argv_base64", cmd.argv);
  if (cmd.argv_truncated) o.boolean("argv_truncated", true);
  // "argv_zero" (not "argv0", which would sort between argv and argv_base64).
  if (!cmd.argv0.empty()) o.bytes("argv_zero", "argv_zero_base64", cmd.argv0);
  o.uint64("cgroup_id", ev.process.cgroup_id);
  o.string("cluster_name", meta.cluster_name);
  o.string("code", "T4000I");
  o.uint64("ei", ei);
  o.string("event", "session.command");
  if (!cmd.interpreter.empty())
    o.bytes_array("interpreter", "interpreter_base64", cmd.interpreter);
  if (!cmd.kernel_path.empty()) o.bytes("kernel_path", "kernel_path_base64", cmd.kernel_path);
  if (cmd.kernel_path_truncated) o.boolean("kernel_path_truncated", true);
  o.string("login", meta.login);
  o.string("namespace", meta.namespace_name);
  o.bytes("path", "path_base64", cmd.path);
  if (cmd.path_truncated) o.boolean("path_truncated", true);
  o.uint64("pid", ev.process.pid);
  o.uint64("ppid", ev.process.ppid);
  o.string("program", ev.process.program);
  o.int64("return_code", cmd.return_code);
  o.string("server_hostname", meta.server_hostname);
  o.string("server_id", meta.server_id);
  o.string("sid", meta.sid);
  o.time("time", ev.time_ns);
  o.string("uid", uid);
  o.string("user", meta.user);
  o.end();
}

void encode_disk(const Event& ev, const DiskEvent& disk, const SessionMeta& meta, uint64_t ei,
                 std::string_view uid, std::string& out) {
  JsonObject o(out);
  remote_addr(o, meta);
  o.uint64("cgroup_id", ev.process.cgroup_id);
  o.string("cluster_name", meta.cluster_name);
  o.string("code", "T4001I");
  o.uint64("ei", ei);
  o.string("event", "session.disk");
  o.int64("flags", disk.flags);
  // kernel_path: what was opened (absent for a failed open, which opened
  // nothing); path stays what the program asked for, as in Teleport.
  if (!disk.kernel_path.empty()) o.bytes("kernel_path", "kernel_path_base64", disk.kernel_path);
  if (disk.kernel_path_missing) o.boolean("kernel_path_missing", true);
  if (disk.kernel_path_truncated) o.boolean("kernel_path_truncated", true);
  o.string("login", meta.login);
  o.string("namespace", meta.namespace_name);
  o.bytes("path", "path_base64", disk.path);
  if (disk.path_truncated) o.boolean("path_truncated", true);
  if (disk.path_unreadable) o.boolean("path_unreadable", true);
  o.uint64("pid", ev.process.pid);
  o.uint64("ppid", ev.process.ppid);
  o.string("program", ev.process.program);
  o.int64("return_code", disk.return_code);
  o.string("server_hostname", meta.server_hostname);
  o.string("server_id", meta.server_id);
  o.string("sid", meta.sid);
  o.time("time", ev.time_ns);
  o.string("uid", uid);
  o.string("user", meta.user);
  o.end();
}

const char* protocol_name(NetProtocol p) {
  switch (p) {
    case NetProtocol::tcp: return "tcp";
    case NetProtocol::udp: return "udp";
    case NetProtocol::unix_socket: return "unix";
  }
  return "tcp";
}

const char* result_name(ConnectResult r) {
  switch (r) {
    case ConnectResult::established: return "established";
    case ConnectResult::refused: return "refused";
    case ConnectResult::failed: return "failed";
    case ConnectResult::closed: return "closed";
    case ConnectResult::none: break;
  }
  return "";
}

// The guide's fields, and Vigil's: net_ns, protocol, src_port; unix_path for
// a unix socket (which has no addresses, port or version); result and
// return_code for a connect's result.
void encode_network(const Event& ev, const NetworkEvent& net, const SessionMeta& meta,
                    uint64_t ei, std::string_view uid, std::string& out) {
  const bool inet = net.protocol != NetProtocol::unix_socket;
  JsonObject o(out);
  o.int64("action", net.action);
  remote_addr(o, meta);
  o.uint64("cgroup_id", ev.process.cgroup_id);
  o.string("cluster_name", meta.cluster_name);
  o.string("code", "T4002I");
  if (inet) {
    o.string("dst_addr", net.dst_addr);
    o.uint64("dst_port", net.dst_port);
  }
  o.uint64("ei", ei);
  o.string("event", "session.network");
  if (net.forgotten_destinations) o.uint64("forgotten_destinations", net.forgotten_destinations);
  o.string("login", meta.login);
  o.string("namespace", meta.namespace_name);
  o.uint64("net_ns", net.net_ns);
  o.int64("operation", net.operation);
  o.uint64("pid", ev.process.pid);
  o.uint64("ppid", ev.process.ppid);
  o.string("program", ev.process.program);
  o.string("protocol", protocol_name(net.protocol));
  if (net.result != ConnectResult::none) {
    o.string("result", result_name(net.result));
    o.int64("return_code", net.return_code);
  }
  o.string("server_hostname", meta.server_hostname);
  o.string("server_id", meta.server_id);
  o.string("sid", meta.sid);
  if (inet) {
    o.string("src_addr", net.src_addr);
    if (net.src_port) o.uint64("src_port", net.src_port);
  }
  o.time("time", ev.time_ns);
  o.string("uid", uid);
  if (!inet) {
    if (net.unix_abstract) o.boolean("unix_abstract", true);
    o.bytes("unix_path", "unix_path_base64", net.unix_path);
  }
  o.string("user", meta.user);
  if (inet) o.int64("version", net.version);
  o.end();
}

}  // namespace

void encode_event(const Event& ev, const SessionMeta& meta, uint64_t ei, std::string_view uid,
                  std::string& out) {
  if (const auto* cmd = std::get_if<CommandEvent>(&ev.body)) {
    encode_command(ev, *cmd, meta, ei, uid, out);
  } else if (const auto* disk = std::get_if<DiskEvent>(&ev.body)) {
    encode_disk(ev, *disk, meta, ei, uid, out);
  } else {
    encode_network(ev, std::get<NetworkEvent>(ev.body), meta, ei, uid, out);
  }
}

void encode_session_start(const SessionStart& start, const SessionMeta& meta, uint64_t ei,
                          std::string_view uid, std::string& out) {
  JsonObject o(out);
  remote_addr(o, meta);
  o.string("cluster_name", meta.cluster_name);
  o.string("code", "T2000I");
  o.uint64("ei", ei);
  o.string("event", "session.start");
  if (!start.initial_command.empty())
    o.bytes_array("initial_command", "initial_command_base64", start.initial_command);
  o.string("login", meta.login);
  o.string("namespace", meta.namespace_name);
  if (!start.sealed.empty()) o.string_array("sealed", start.sealed);
  o.string("server_hostname", meta.server_hostname);
  o.string("server_id", meta.server_id);
  o.string("sid", meta.sid);
  o.time("time", start.time_ns);
  o.string("uid", uid);
  o.string("user", meta.user);
  o.end();
}

void encode_session_end(const SessionEnd& end, const SessionMeta& meta, uint64_t ei,
                        std::string_view uid, std::string& out) {
  JsonObject o(out);
  remote_addr(o, meta);
  o.string("cluster_name", meta.cluster_name);
  o.string("code", "T2004I");
  o.uint64("ei", ei);
  o.boolean("enhanced_recording", end.enhanced_recording);
  o.kind_names("enhanced_recording_kinds", end.kinds);
  if (!end.error.empty()) o.string("error", end.error);
  o.string("event", "session.end");
  o.boolean("interactive", end.interactive);
  if (end.leftover_processes) {
    o.string("leftover_action", end.leftovers_killed ? "killed" : "recorded");
    o.uint64("leftover_processes", end.leftover_processes);
  }
  o.string("login", meta.login);
  if (!end.recovered) o.kind_counts("lost_events", end.lost);
  o.string("namespace", meta.namespace_name);
  o.string_array("participants", end.participants);
  o.kind_counts("recorded_events", end.recorded);
  if (end.recovered) o.boolean("recovered", true);
  o.string("server_hostname", meta.server_hostname);
  o.string("server_id", meta.server_id);
  o.time("session_start", end.start_ns);
  o.time("session_stop", end.stop_ns);
  o.string("sid", meta.sid);
  o.time("time", end.time_ns);
  o.string("uid", uid);
  o.string("user", meta.user);
  o.end();
}

void encode_leftovers_end(const LeftoversEnd& end, const SessionMeta& meta, uint64_t ei,
                          std::string_view uid, std::string& out) {
  JsonObject o(out);
  remote_addr(o, meta);
  o.string("cluster_name", meta.cluster_name);
  o.string("code", "V2005I");
  o.uint64("ei", ei);
  o.string("event", "session.leftovers_end");
  o.boolean("killed", end.killed);
  o.string("login", meta.login);
  if (!end.recovered) o.kind_counts("lost_events", end.lost);
  o.string("namespace", meta.namespace_name);
  o.uint64("processes", end.processes);
  o.kind_counts("recorded_events", end.recorded);
  if (end.recovered) o.boolean("recovered", true);
  o.string("server_hostname", meta.server_hostname);
  o.string("server_id", meta.server_id);
  o.string("sid", meta.sid);
  o.time("time", end.time_ns);
  o.string("uid", uid);
  o.string("user", meta.user);
  o.end();
}

void encode_exec(const ExecEnd& exec, const SessionMeta& meta, uint64_t ei, std::string_view uid,
                 std::string& out) {
  JsonObject o(out);
  remote_addr(o, meta);
  o.string("cluster_name", meta.cluster_name);
  o.string("code", "T3002I");
  o.string("command", exec.command);
  o.uint64("ei", ei);
  o.string("event", "exec");
  o.int64("exit_code", exec.exit_code);
  o.string("login", meta.login);
  o.string("namespace", meta.namespace_name);
  o.string("server_hostname", meta.server_hostname);
  o.string("server_id", meta.server_id);
  o.string("sid", meta.sid);
  o.time("time", exec.time_ns);
  o.string("uid", uid);
  o.string("user", meta.user);
  o.end();
}

namespace {

// "reason: message"; a summary whose refusals said different things has
// only the reason.
std::string error_text(const std::string& reason, const std::string& message) {
  return message.empty() ? reason : reason + ": " + message;
}

}  // namespace

void encode_auth(const AuthAttempt& attempt, const SessionMeta& meta, std::string_view uid,
                 std::string& out) {
  JsonObject o(out);
  if (!attempt.remote_addr.empty()) o.string("addr.remote", attempt.remote_addr);
  if (attempt.success) {
    o.string("ca_fingerprint", attempt.ca_fingerprint);
    o.uint64("cert_serial", attempt.cert_serial);
  }
  o.string("cluster_name", meta.cluster_name);
  o.string("code", attempt.success ? "T3007I" : "T3007W");
  if (attempt.count > 0) o.uint64("count", attempt.count);
  if (!attempt.success) o.string("error", error_text(attempt.reason, attempt.message));
  o.string("event", "auth");
  if (attempt.count > 0) o.time("first_time", attempt.first_time_ns);
  if (attempt.success) o.string("key_id", attempt.key_id);
  o.string("login", attempt.login);
  if (!attempt.method.empty()) o.string("method", attempt.method);
  o.string("namespace", meta.namespace_name);
  if (!attempt.success) o.string("reason", attempt.reason);
  o.string("server_hostname", meta.server_hostname);
  o.string("server_id", meta.server_id);
  o.boolean("success", attempt.success);
  o.time("time", attempt.time_ns);
  o.string("uid", uid);
  o.string("user", attempt.user);
  o.end();
}

void encode_session_rejected(const SessionRejection& r, const SessionMeta& meta,
                             std::string_view uid, std::string& out) {
  JsonObject o(out);
  if (!r.remote_addr.empty()) o.string("addr.remote", r.remote_addr);
  o.string("cluster_name", meta.cluster_name);
  o.string("code", "T1006W");
  if (r.count > 0) o.uint64("count", r.count);
  o.string("error", error_text(r.reason, r.message));
  o.string("event", "session.rejected");
  if (r.count > 0) o.time("first_time", r.first_time_ns);
  o.string("login", r.login);
  if (r.max > 0) o.uint64("max", r.max);
  o.string("namespace", meta.namespace_name);
  o.string("reason", r.reason);
  o.string("request", r.request);
  o.string("server_hostname", meta.server_hostname);
  o.string("server_id", meta.server_id);
  o.time("time", r.time_ns);
  o.string("uid", uid);
  o.string("user", r.user);
  o.end();
}

}  // namespace vigil::audit
