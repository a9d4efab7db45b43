// Reading YAML written by people, bounded and with errors that say where:
// what the node's config (config.cpp) and the cluster's resource files
// (cluster/parse.cpp) share.
//
// load_bounded() walks the YAML events before yaml-cpp builds any node, so a
// file cannot make the parser nest, grow or loop past the Limits it is given;
// Reader then reads documents field by field, each mistake an Error naming
// "source:line: field.path: what is wrong" and, for an unknown field, the
// closest valid one.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace vigil::yaml {

// Where a value sits, as error messages show it: its dotted field path and
// the 1-based line of its key (of the item itself, for list items). The key's
// line rather than the value's, because yaml-cpp marks an empty value at the
// next token and an alias at its anchor, both possibly far away.
struct Place {
  std::string path;
  int line = 0;
};

int line_of(const YAML::Node& node);
std::string child_path(const std::string& parent, std::string_view key);
// A value as error messages quote it: whole when short, else its first
// `shown` bytes (cut at a UTF-8 boundary) and its size.
std::string quoted(std::string_view text, size_t shown = 80);
// What a value is, for "expected X, got Y".
std::string describe(const YAML::Node& node, size_t shown = 80);
std::string comma_list(const std::vector<std::string_view>& words);

using FieldReader = std::function<Result<void>(const YAML::Node& value, const Place& at)>;

struct Field {
  std::string_view key;
  FieldReader read;
  bool required = false;
};

// How a Reader words what it reports.
struct ReaderStyle {
  size_t shown = 80;                 // bytes of a value quoted in a message
  size_t max_list_items = 0;         // 0: lists are bounded by the file's size only
  // An unknown field: "; did you mean X?" when one is close, and then
  // false: "; expected one of: ..." only when none is close;
  // true: " (valid fields here: ...)" always.
  bool always_list_fields = false;
};

// The generic half of reading a document: sections, lists and scalars.
// What the fields are is the schema's business, in the callers.
class Reader {
 public:
  explicit Reader(std::string_view source, ReaderStyle style = {}) : source_(source), style_(style) {}

  Error fail(const Place& at, std::string_view what) const;
  std::string describe(const YAML::Node& node) const { return yaml::describe(node, style_.shown); }
  std::string quoted(std::string_view text) const { return yaml::quoted(text, style_.shown); }

  // A map whose keys must be among fields, each given at most once; the
  // required ones must be there. An empty value sets nothing.
  Result<void> section(const YAML::Node& node, const Place& at, const std::vector<Field>& fields) const;
  // A list, each item read with its own path ("field[2]") and line. An empty
  // value is an empty list.
  Result<void> list(const YAML::Node& node, const Place& at, std::string_view expected,
                    const FieldReader& read_item) const;
  // A non-empty scalar that is_valid accepts (any, without is_valid).
  Result<void> text(const YAML::Node& node, const Place& at, std::string_view expected,
                    std::string& out, bool (*is_valid)(std::string_view) = nullptr) const;
  // A scalar that must be one of choices ("unknown WHAT "x"; did you mean y? (valid: ...)").
  Result<void> choice(const YAML::Node& node, const Place& at, std::string_view what,
                      const std::vector<std::string_view>& choices, std::string& out) const;
  // true or false, in the spellings config/values.hpp's parse_bool takes.
  Result<void> boolean(const YAML::Node& node, const Place& at, bool& out) const;
  // A whole number from min to max ("expected a whole number of UNIT from min to max").
  Result<void> whole_number(const YAML::Node& node, const Place& at, std::string_view unit,
                            uint32_t min, uint32_t max, uint32_t& out) const;

 private:
  Error unknown_field(const Place& at, std::string_view name, const std::vector<Field>& fields) const;

  std::string source_;
  ReaderStyle style_;
};

// The bounds of a file, checked on its YAML events before any node is
// built. Each hint finishes the message of its bound (what to check).
struct Limits {
  size_t max_file_bytes = 1 << 20;
  std::string file_hint;            // after "the file goes past N bytes here"
  int max_nesting = 16;             // maps and lists inside each other
  std::string nesting_hint;         // after "maps and lists nest more than N levels deep here"
  size_t max_value_bytes = 4096;    // a scalar value
  std::string value_hint;           // after "a value of N bytes; values are at most M"
  size_t max_name_bytes = 0;        // a map's key; 0: keys are values like any other
  std::string name_hint;            // after "a field name of N bytes; names are at most M"
  size_t max_documents = 0;         // 0: any number
  bool refuse_aliases = false;      // `*name` is an error (else counted as one value, never expanded)
  std::string alias_hint;
  std::string stuck_hint;           // after "YAML syntax error: the text cannot be read past here"
  // When set: the offset of the first byte of a value that is not
  // acceptable text (e.g. not UTF-8), and the hint that follows.
  std::function<std::optional<size_t>(std::string_view)> bad_byte;
  std::string bad_byte_hint;
};

// The non-empty documents of text, each checked against limits first;
// errors as "source:line: ...".
Result<std::vector<YAML::Node>> load_bounded(std::string_view text, std::string_view source,
                                             const Limits& limits);

}  // namespace vigil::yaml
