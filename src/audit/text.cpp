#include "audit/text.hpp"

#include <charconv>
#include <variant>

#include "audit/syscall_names.hpp"
#include "audit/text_quote.hpp"
#include "audit/timefmt.hpp"

namespace vigil::audit {
namespace {

template <typename Int>
void append_number(std::string& out, Int value) {
  char buf[24];
  const auto res = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, res.ptr);
}

// "HH:MM:SS.mmm user=U login=L"
void append_head(std::string& out, int64_t time_ns, const SessionMeta& meta) {
  append_clock_millis(out, time_ns);
  out += " user=";
  append_value(out, meta.user);  // a certificate's key id: chosen by its holder
  out += " login=";
  append_value(out, meta.login);
}

// The outcome of exec or open: "ok", or "ENOENT (-2)" for 0 or -errno.
void append_result(std::string& out, int32_t return_code) {
  out += " → ";
  if (return_code >= 0) {
    out += "ok";
    return;
  }
  const std::string_view name = errno_name(-return_code);
  out += name.empty() ? std::string_view("error") : name;
  out += " (";
  append_number(out, return_code);
  out += ')';
}

void append_command(std::string& out, const CommandEvent& cmd) {
  append_shell_word(out, cmd.path);
  for (const std::string& arg : cmd.argv) {
    out += ' ';
    append_shell_word(out, arg);
  }
  append_result(out, cmd.return_code);
  if (cmd.argv_truncated) out += " [argv truncated]";
  if (cmd.path_truncated) out += " [path truncated]";
  if (cmd.args_lost) out += " [args lost]";
}

void append_disk(std::string& out, const DiskEvent& disk) {
  append_shell_word(out, disk.path);
  out += ' ';
  append_open_flags(out, disk.flags);
  append_result(out, disk.return_code);
  if (disk.path_truncated) out += " [path truncated]";
  if (disk.path_unreadable) out += " [path unreadable]";
  // The file the kernel opened, when the program's words say otherwise
  // (relative, a symlink, /proc/self/fd, or rewritten under the open).
  if (!disk.kernel_path.empty() && disk.kernel_path != disk.path) {
    out += " opened ";
    append_shell_word(out, disk.kernel_path);
    if (disk.kernel_path_truncated) out += " [kernel path truncated]";
  }
}

void append_endpoint(std::string& out, int version, const std::string& addr, uint16_t port) {
  // An IPv6 address holds colons, so the port needs the address in brackets.
  if (version == 6) out += '[';
  append_printable(out, addr);
  if (version == 6) out += ']';
  out += ':';
  append_number(out, port);
}

void append_network(std::string& out, const NetworkEvent& net) {
  if (net.protocol == NetProtocol::unix_socket) {
    out += net.unix_abstract ? "unix connect abstract " : "unix connect ";
    append_shell_word(out, net.unix_path);  // chosen by whoever made the socket
  } else {
    if (net.protocol == NetProtocol::udp) out += "udp ";
    switch (net.operation) {
      case net_op::send: out += "send "; break;
      case net_op::accept: out += "accept "; break;
      case net_op::connect_result: out += "connect result "; break;
      default: out += "connect "; break;
    }
    if (net.operation == net_op::accept) {
      append_endpoint(out, net.version, net.src_addr, net.src_port);
    } else {
      append_printable(out, net.src_addr);
    }
    out += " → ";
    append_endpoint(out, net.version, net.dst_addr, net.dst_port);
    out += net.version == 6 ? " v6" : " v4";
    switch (net.result) {
      case ConnectResult::established: out += ": established"; break;
      case ConnectResult::refused: out += ": refused"; break;
      case ConnectResult::closed: out += ": closed before an answer"; break;
      case ConnectResult::failed: out += ": failed"; append_result(out, net.return_code); break;
      case ConnectResult::none: break;
    }
  }
  if (net.net_ns) {
    out += " netns=";
    append_number(out, net.net_ns);
  }
  if (net.forgotten_destinations) {
    out += " [";
    append_number(out, net.forgotten_destinations);
    out += " destinations forgotten]";
  }
  if (net.action == 1) out += " denied";
}

void append_counts(std::string& out, const KindCounts& counts, KindSet kinds) {
  for (int i = 0; i < kKindCount; ++i) {
    const auto kind = static_cast<Kind>(i);
    out += ' ';
    out += kind_name(kind);
    out += '=';
    if (kinds.has(kind))
      append_number(out, counts[kind]);
    else
      out += "off";
  }
}

}  // namespace

void format_text(const Event& ev, const SessionMeta& meta, std::string& out) {
  append_head(out, ev.time_ns, meta);
  out += ' ';
  out += kind_name(ev.kind());
  out += " pid=";
  append_number(out, ev.process.pid);
  out += ' ';
  append_value(out, ev.process.program);  // a process names itself (prctl)
  out += ": ";
  if (const auto* cmd = std::get_if<CommandEvent>(&ev.body)) {
    append_command(out, *cmd);
  } else if (const auto* disk = std::get_if<DiskEvent>(&ev.body)) {
    append_disk(out, *disk);
  } else {
    append_network(out, std::get<NetworkEvent>(ev.body));
  }
  out += '\n';
}

void format_session_end_text(const SessionEnd& end, const SessionMeta& meta, std::string& out) {
  append_head(out, end.time_ns, meta);
  out += " session ";
  append_value(out, meta.sid);
  out += " ended: recorded";
  append_counts(out, end.recorded, end.kinds);
  if (end.recovered) {
    out += " (recovered: the recorder stopped first; losses unknown)";
  } else {
    out += ", lost";
    append_counts(out, end.lost, end.kinds);
  }
  if (end.leftover_processes) {
    out += ", " + std::to_string(end.leftover_processes) +
           (end.leftovers_killed ? " processes left running: killed"
                                 : " processes left running: still recorded");
  }
  if (!end.error.empty()) {
    out += ", error=";
    append_value(out, end.error);
  }
  out += '\n';
}

void format_leftovers_end_text(const LeftoversEnd& end, const SessionMeta& meta,
                               std::string& out) {
  append_head(out, end.time_ns, meta);
  out += " session ";
  append_printable(out, meta.sid);
  out += end.killed ? ": its leftover processes were killed: recorded"
                    : ": its last leftover process exited: recorded";
  append_counts(out, end.recorded, KindSet::all());
  if (end.recovered) {
    out += " (recovered)";
  } else {
    out += ", lost";
    append_counts(out, end.lost, KindSet::all());
  }
  out += '\n';
}

}  // namespace vigil::audit
