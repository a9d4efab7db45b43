#include "config/yaml_reader.hpp"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "config/values.hpp"

namespace vigil::yaml {

int line_of(const YAML::Node& node) { return node.Mark().line + 1; }

std::string child_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string quoted(std::string_view text, size_t shown) {
  if (text.size() <= shown) return '"' + std::string(text) + '"';
  size_t cut = shown;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
  return '"' + std::string(text.substr(0, cut)) + "...\" (" + std::to_string(text.size()) +
         " bytes)";
}

std::string describe(const YAML::Node& node, size_t shown) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return quoted(node.Scalar(), shown);
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return "nothing";
  }
}

std::string comma_list(const std::vector<std::string_view>& words) {
  std::string out;
  for (std::string_view word : words) {
    if (!out.empty()) out += ", ";
    out += word;
  }
  return out;
}

Error Reader::fail(const Place& at, std::string_view what) const {
  std::string message = source_ + ":" + std::to_string(at.line) + ": ";
  if (!at.path.empty()) message += at.path + ": ";
  return Error::of(Errc::invalid_argument, message + std::string(what));
}

Result<void> Reader::section(const YAML::Node& node, const Place& at,
                             const std::vector<Field>& fields) const {
  if (!node.IsMap() && !node.IsNull())
    return fail(at, "expected a map of fields, got " + describe(node));
  std::map<std::string, int> line_of_key;
  if (node.IsMap()) {
    for (const auto& entry : node) {
      const YAML::Node& key = entry.first;
      Place key_at{at.path, line_of(key)};
      if (!key.IsScalar()) return fail(key_at, "expected a field name, got " + describe(key));
      const std::string& name = key.Scalar();
      key_at.path = child_path(at.path, name);
      auto [first, is_new] = line_of_key.emplace(name, key_at.line);
      if (!is_new)
        return fail(key_at,
                    "given twice (first on line " + std::to_string(first->second) + "); keep one");
      auto field =
          std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.key == name; });
      if (field == fields.end()) return unknown_field(key_at, name, fields);
      if (auto read = field->read(entry.second, key_at); !read) return read;
    }
  }
  for (const Field& f : fields)
    if (f.required && !line_of_key.contains(std::string(f.key)))
      return fail(at, "missing field " + child_path(at.path, f.key));
  return {};
}

Result<void> Reader::list(const YAML::Node& node, const Place& at, std::string_view expected,
                          const FieldReader& read_item) const {
  if (node.IsNull()) return {};
  if (!node.IsSequence())
    return fail(at, "expected " + std::string(expected) + ", got " + describe(node));
  if (style_.max_list_items != 0 && node.size() > style_.max_list_items)
    return fail(at, "a list of " + std::to_string(node.size()) + " items; at most " +
                        std::to_string(style_.max_list_items));
  size_t index = 0;
  for (const YAML::Node& item : node) {
    Place item_at{at.path + "[" + std::to_string(index++) + "]", line_of(item)};
    if (auto read = read_item(item, item_at); !read) return read;
  }
  return {};
}

Result<void> Reader::text(const YAML::Node& node, const Place& at, std::string_view expected,
                          std::string& out, bool (*is_valid)(std::string_view)) const {
  if (!node.IsScalar() || node.Scalar().empty() || (is_valid && !is_valid(node.Scalar())))
    return fail(at, "expected " + std::string(expected) + ", got " + describe(node));
  out = node.Scalar();
  return {};
}

Result<void> Reader::choice(const YAML::Node& node, const Place& at, std::string_view what,
                            const std::vector<std::string_view>& choices, std::string& out) const {
  if (!node.IsScalar()) return fail(at, "expected " + std::string(what) + ", got " + describe(node));
  const std::string& v = node.Scalar();
  if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
    std::string msg = "unknown " + std::string(what) + " " + quoted(v);
    if (auto s = config::closest(v, choices)) msg += "; did you mean " + std::string(*s) + "?";
    return fail(at, msg + " (valid: " + comma_list(choices) + ")");
  }
  out = v;
  return {};
}

Result<void> Reader::boolean(const YAML::Node& node, const Place& at, bool& out) const {
  std::optional<bool> value = node.IsScalar() ? config::parse_bool(node.Scalar()) : std::nullopt;
  if (!value) return fail(at, "expected true or false, got " + describe(node));
  out = *value;
  return {};
}

Result<void> Reader::whole_number(const YAML::Node& node, const Place& at, std::string_view unit,
                                  uint32_t min, uint32_t max, uint32_t& out) const {
  std::optional<uint32_t> value =
      node.IsScalar() ? config::parse_whole_number(node.Scalar(), min, max) : std::nullopt;
  if (!value)
    return fail(at, "expected a whole number of " + std::string(unit) + " from " +
                        std::to_string(min) + " to " + std::to_string(max) + ", got " +
                        describe(node));
  out = *value;
  return {};
}

Error Reader::unknown_field(const Place& at, std::string_view name,
                            const std::vector<Field>& fields) const {
  std::vector<std::string_view> keys;
  for (const Field& field : fields) keys.push_back(field.key);
  std::string what = "unknown field " + at.path;
  auto suggestion = config::closest(name, keys);
  if (suggestion) what += "; did you mean " + std::string(*suggestion) + "?";
  if (style_.always_list_fields)
    what += " (valid fields here: " + comma_list(keys) + ")";
  else if (!suggestion)
    what += "; expected one of: " + comma_list(keys);
  return fail(Place{"", at.line}, what);
}

namespace {

// A bound passed at a line.
struct LimitPassed {
  int line;
  std::string what;
};

// Walks the YAML events before any node is built. Aliases are events of
// their own, never expanded here, so a file cannot multiply its size
// through them.
class LimitChecker : public YAML::EventHandler {
 public:
  explicit LimitChecker(const Limits& limits) : limits_(limits) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    // yaml-cpp 0.7 can get stuck on some malformed text (a NUL after a
    // '---', for one), starting empty documents at the same place forever.
    if (document_at_ == mark.pos)
      throw LimitPassed{mark.line + 1,
                        "YAML syntax error: the text cannot be read past here" + limits_.stuck_hint};
    document_at_ = mark.pos;
    if (limits_.max_documents != 0 && ++documents_ > limits_.max_documents)
      throw LimitPassed{mark.line + 1, "more than " + std::to_string(limits_.max_documents) +
                                           " documents; split the file"};
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override { node(); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    if (limits_.refuse_aliases) throw LimitPassed{mark.line + 1, limits_.alias_hint};
    node();
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string& value) override {
    const bool is_name = node() && limits_.max_name_bytes != 0;
    if (is_name && value.size() > limits_.max_name_bytes)
      throw LimitPassed{mark.line + 1, "a field name of " + std::to_string(value.size()) +
                                           " bytes; names are at most " +
                                           std::to_string(limits_.max_name_bytes) +
                                           limits_.name_hint};
    if (!is_name && value.size() > limits_.max_value_bytes)
      throw LimitPassed{mark.line + 1, "a value of " + std::to_string(value.size()) +
                                           " bytes; values are at most " +
                                           std::to_string(limits_.max_value_bytes) +
                                           limits_.value_hint};
    if (limits_.bad_byte)
      if (auto at = limits_.bad_byte(value))
        throw LimitPassed{mark.line + 1, "a value that is not valid UTF-8 (byte " +
                                             std::to_string(*at + 1) + " of it)" +
                                             limits_.bad_byte_hint};
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    open(mark, false);
  }
  void OnSequenceEnd() override { levels_.pop_back(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    open(mark, true);
  }
  void OnMapEnd() override { levels_.pop_back(); }

 private:
  struct Level {
    bool map;
    bool name_next;  // in a map, names and values alternate
  };

  // A node starts in the current level; true when it is a map's key.
  bool node() {
    if (levels_.empty() || !levels_.back().map) return false;
    const bool is_name = levels_.back().name_next;
    levels_.back().name_next = !is_name;
    return is_name;
  }

  void open(const YAML::Mark& mark, bool map) {
    node();
    if (levels_.size() >= static_cast<size_t>(limits_.max_nesting))
      throw LimitPassed{mark.line + 1, "maps and lists nest more than " +
                                           std::to_string(limits_.max_nesting) +
                                           " levels deep here" + limits_.nesting_hint};
    levels_.push_back({map, true});
  }

  const Limits& limits_;
  std::vector<Level> levels_;
  size_t documents_ = 0;
  std::optional<size_t> document_at_;  // where the last document started
};

}  // namespace

Result<std::vector<YAML::Node>> load_bounded(std::string_view text, std::string_view source,
                                             const Limits& limits) {
  Reader reader(source);
  if (text.size() > limits.max_file_bytes) {
    const auto line = std::count(text.begin(), text.begin() + limits.max_file_bytes, '\n') + 1;
    return reader.fail(Place{"", static_cast<int>(line)},
                       "the file goes past " + std::to_string(limits.max_file_bytes) +
                           " bytes here" + limits.file_hint);
  }
  std::vector<YAML::Node> documents;
  try {
    {
      std::istringstream in{std::string(text)};
      YAML::Parser events(in);
      LimitChecker checker(limits);
      while (events.HandleNextDocument(checker)) {
      }
    }
    documents = YAML::LoadAll(std::string(text));
  } catch (const LimitPassed& e) {
    return reader.fail(Place{"", e.line}, e.what);
  } catch (const YAML::Exception& e) {
    return Error::of(Errc::invalid_argument,
                     std::string(source) + ":" + std::to_string(e.mark.line + 1) + ":" +
                         std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg +
                         "; check the indentation, quotes and brackets here");
  }
  // Empty documents (an empty file, only comments, a stray ---) hold nothing.
  std::erase_if(documents, [](const YAML::Node& d) { return d.IsNull(); });
  return documents;
}

}  // namespace vigil::yaml
