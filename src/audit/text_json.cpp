#include "audit/text_json.hpp"

namespace vigil::audit {
namespace {

using Json = nlohmann::json;

// nlohmann's own DOM builder, with a depth count in front of it that ends
// the parse (a false return) at the first level too deep.
class BoundedDom {
 public:
  explicit BoundedDom(Json& root) : dom_(root, /*allow_exceptions=*/false) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(Json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(Json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(Json::number_float_t v, const Json::string_t& s) {
    return dom_.number_float(v, s);
  }
  bool string(Json::string_t& v) { return dom_.string(v); }
  bool binary(Json::binary_t& v) { return dom_.binary(v); }
  bool start_object(std::size_t n) { return enter() && dom_.start_object(n); }
  bool key(Json::string_t& k) { return dom_.key(k); }
  bool end_object() { return --depth_, dom_.end_object(); }
  bool start_array(std::size_t n) { return enter() && dom_.start_array(n); }
  bool end_array() { return --depth_, dom_.end_array(); }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception&) {
    error_at_ = position;
    return false;
  }

  bool too_deep() const { return too_deep_; }
  size_t error_at() const { return error_at_; }

 private:
  bool enter() {
    if (++depth_ <= kMaxJsonDepth) return true;
    too_deep_ = true;
    return false;
  }

  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  int depth_ = 0;
  bool too_deep_ = false;
  size_t error_at_ = 0;
};

}  // namespace

std::optional<Json> parse_json_bounded(std::string_view text, std::string* why) {
  Json value;
  BoundedDom dom(value);
  if (Json::sax_parse(text.data(), text.data() + text.size(), &dom)) return value;
  if (why) {
    *why = dom.too_deep() ? "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels"
                          : "not JSON at byte " + std::to_string(dom.error_at());
  }
  // What was built of a refused value is at most kMaxJsonDepth deep: its
  // destructor does not recurse far either.
  return std::nullopt;
}

}  // namespace vigil::audit
