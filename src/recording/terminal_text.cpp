#include "recording/terminal_text.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "audit/syscall_names.hpp"
#include "audit/text_json.hpp"
#include "audit/text_quote.hpp"
#include "audit/utf8.hpp"
#include "recording/time_offset.hpp"
#include "recording/utf8_tail.hpp"

namespace vigil::recording {
namespace {

constexpr unsigned char kEsc = 0x1b;
constexpr char32_t kReplacement = 0xfffd;
// An OSC or DCS string that never ends would swallow the rest of the
// session; past this length it is taken as ended.
constexpr size_t kMaxStringLength = 64 * 1024;

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// The first numeric parameter of a CSI sequence, `fallback` when absent or
// 0. Capped: no count means more than a line's width anyway.
size_t first_param(const std::string& params, size_t fallback) {
  size_t v = 0;
  for (char c : params) {
    if (c < '0' || c > '9') break;
    v = std::min<size_t>(v * 10 + (c - '0'), 10'000);
  }
  return v == 0 ? fallback : v;
}

constexpr size_t kTabWidth = 8;

}  // namespace

void TerminalText::set_width(size_t cols) {
  width_ = cols == 0 || cols > kMaxColumns ? kMaxColumns : cols;
  cursor_ = std::min(cursor_, width_);
}

void TerminalText::feed(std::string_view bytes, std::string& out) {
  std::string data = std::move(carry_);
  data += bytes;
  const size_t tail = incomplete_utf8_tail(data);
  carry_ = data.substr(data.size() - tail);
  data.resize(data.size() - tail);

  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  for (size_t i = 0; i < n;) {
    if (state_ == State::ground && p[i] >= 0x80) {
      char32_t cp;
      const size_t len = audit::utf8_decode(p + i, n - i, &cp);
      if (len == 0) {
        put(kReplacement, out);
        ++i;
      } else {
        if (cp >= 0xa0) put(cp, out);  // C1 controls (U+0080..U+009F) are dropped
        i += len;
      }
      continue;
    }
    byte(p[i++], out);
  }
}

void TerminalText::byte(unsigned char c, std::string& out) {
  switch (state_) {
    case State::ground:
      if (c == kEsc)
        state_ = State::escape;
      else if (c == '\n')
        end_line(out);
      else if (c == '\r')
        cursor_ = 0;
      else if (c == '\b')
        cursor_ -= cursor_ > 0;
      else if (c == '\t')
        cursor_ = std::min((cursor_ / kTabWidth + 1) * kTabWidth, width_ - 1);
      else if (c >= 0x20 && c != 0x7f)
        put(c, out);
      return;  // other control characters draw nothing
    case State::escape:
      if (c == '[') {
        state_ = State::csi;
        csi_params_.clear();
      } else if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_') {
        state_ = State::string;  // OSC, DCS, SOS, PM, APC: until BEL or ESC '\'
        string_length_ = 0;
      } else if (c >= 0x20 && c <= 0x2f) {
        state_ = State::escape_intermediate;  // e.g. ESC ( B: character set
      } else {
        state_ = State::ground;  // a two-byte sequence such as ESC 7 or ESC =
      }
      return;
    case State::escape_intermediate:
      if (c < 0x20 || c > 0x2f) state_ = State::ground;
      return;
    case State::csi:
      if (c >= 0x40 && c <= 0x7e) {
        csi_final(c, out);
        state_ = State::ground;
      } else if (c == kEsc) {
        state_ = State::escape;
      } else if (c == 0x18 || c == 0x1a) {
        state_ = State::ground;  // CAN, SUB: the sequence is cancelled
      } else if (csi_params_.size() < 64) {
        csi_params_ += static_cast<char>(c);
      }
      return;
    case State::string:
      if (c == 0x07 || c == 0x18 || c == 0x1a || ++string_length_ > kMaxStringLength)
        state_ = State::ground;
      else if (c == kEsc)
        state_ = State::string_escape;
      return;
    case State::string_escape:
      state_ = State::ground;
      if (c != '\\') {
        state_ = State::escape;  // ESC ends the string and starts a new sequence
        byte(c, out);
      }
      return;
  }
}

// The CSI sequences that change the current line; all others (colours,
// modes, vertical moves, scroll regions, erase in display) are dropped.
// Every count is clamped to the line's width first, so that no sequence
// costs more than O(width_).
void TerminalText::csi_final(unsigned char final, std::string& out) {
  // Private sequences (ESC [ ? 25 l) change modes; ones with intermediate
  // bytes (ESC [ 5 SP @ is scroll left, not insert) are other functions.
  for (char c : csi_params_)
    if (c < '0' || c > ';') return;
  const size_t n = std::min(first_param(csi_params_, 1), width_);
  const size_t last_column = width_ - 1;
  switch (final) {
    case 'C':  // cursor forward
    case 'a':  // character position relative
      cursor_ = std::min(cursor_ + n, last_column);
      break;
    case 'D':  // cursor backward
      cursor_ -= std::min(cursor_, n);
      break;
    case 'G':  // cursor character absolute
    case '`':  // character position absolute
      cursor_ = std::min(n - 1, last_column);
      break;
    case 'I':  // forward n tab stops
      cursor_ = std::min((std::min(cursor_, last_column) / kTabWidth + n) * kTabWidth, last_column);
      break;
    case 'Z': {  // backward n tab stops
      const size_t stop = cursor_ == 0 ? 0 : (std::min(cursor_, width_) - 1) / kTabWidth;
      cursor_ = (stop - std::min(stop, n - 1)) * kTabWidth;
      break;
    }
    case 'K': {
      const size_t mode = first_param(csi_params_, 0);
      if (mode == 0 && cursor_ < line_.size()) line_.resize(cursor_);
      if (mode == 1) std::fill_n(line_.begin(), std::min(line_.size(), cursor_ + 1), U' ');
      if (mode == 2) line_.clear();
      break;
    }
    case 'P':  // delete characters
      if (cursor_ < line_.size()) line_.erase(cursor_, n);
      break;
    case '@':  // insert blanks: what is pushed past the margin is lost
      if (cursor_ < line_.size()) {
        line_.insert(cursor_, std::min(n, width_ - cursor_), U' ');
        if (line_.size() > width_) line_.resize(width_);
      }
      break;
    case 'X':  // erase characters
      if (cursor_ < line_.size())
        std::fill_n(line_.begin() + cursor_, std::min(n, line_.size() - cursor_), U' ');
      break;
    case 'b':  // repeat the last character: up to the end of the line, no wrap
      if (last_ != 0)
        for (size_t i = 0, k = std::min(n, width_ - std::min(cursor_, width_)); i < k; ++i)
          put(last_, out);
      break;
    default:
      break;
  }
}

void TerminalText::put(char32_t cp, std::string& out) {
  if (cursor_ >= width_) end_line(out);  // the right margin: wrap
  if (cursor_ > line_.size()) line_.resize(cursor_, U' ');
  if (cursor_ == line_.size())
    line_ += cp;
  else
    line_[cursor_] = cp;
  ++cursor_;
  last_ = cp;
}

void TerminalText::end_line(std::string& out) {
  size_t end = line_.find_last_not_of(U' ');
  end = end == std::u32string::npos ? 0 : end + 1;
  for (size_t i = 0; i < end; ++i) append_utf8(out, line_[i]);
  out += '\n';
  line_.clear();
  cursor_ = 0;
}

void TerminalText::break_line(std::string& out) {
  if (line_.find_first_not_of(U' ') != std::u32string::npos) end_line(out);
}

void TerminalText::finish(std::string& out) {
  for (size_t i = 0; i < carry_.size(); ++i) put(kReplacement, out);
  carry_.clear();
  break_line(out);
}

void TextExport::record(const Record& r, std::string& out) {
  ++records_;
  if (r.type == RecordType::output) {
    text_.feed(r.data, out);
  } else if (r.type == RecordType::resize) {
    text_.set_width(r.cols);
  } else if (r.type == RecordType::event && show_commands_) {
    std::string mark, why;
    if (format_command_mark(r.data, start_ns_, r.time_ns, mark, &why)) {
      text_.break_line(out);
      out += mark;
    } else if (!why.empty()) {
      warnings_.push_back("record " + std::to_string(records_) + ": skipped an event (" + why +
                          ")");
    }
  }
}

bool format_command_mark(std::string_view event_json, int64_t start_ns, int64_t time_ns,
                         std::string& out, std::string* why) {
  // Cheap test first: most events of a busy session are file opens.
  if (event_json.find("\"session.command\"") == std::string_view::npos) return false;
  std::string error;
  const auto parsed = audit::parse_json_bounded(event_json, &error);
  if (!parsed) {
    if (why) *why = error;
    return false;
  }
  const nlohmann::json& ev = *parsed;
  auto string_at = [&](const char* key) {
    auto it = ev.find(key);
    return it != ev.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (!ev.is_object() || string_at("event") != "session.command") return false;

  const int64_t ms = std::max<int64_t>(0, offset_ns(time_ns, start_ns)) / 1'000'000;
  std::string millis = std::to_string(ms % 1000);
  out += "[+" + std::to_string(ms / 1000) + "." + std::string(3 - millis.size(), '0') + millis +
         "s] $ ";
  audit::append_shell_word(out, string_at("path"));
  if (auto argv = ev.find("argv"); argv != ev.end() && argv->is_array()) {
    for (const auto& arg : *argv) {
      out += ' ';
      // dump() recurses: arg is at most audit::kMaxJsonDepth deep.
      audit::append_shell_word(
          out, arg.is_string()
                   ? arg.get<std::string>()
                   : arg.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
  }
  if (auto rc = ev.find("return_code"); rc != ev.end() && rc->is_number_integer()) {
    const int64_t code = rc->get<int64_t>();
    // -errno, or any number a damaged event holds (INT64_MIN cannot be negated).
    const std::string_view name =
        code < 0 && code > -4096 ? audit::errno_name(static_cast<int>(-code)) : "";
    if (code != 0)
      out += "   # exec failed: " + (name.empty() ? std::to_string(code) : std::string(name));
  }
  out += '\n';
  return true;
}

}  // namespace vigil::recording
