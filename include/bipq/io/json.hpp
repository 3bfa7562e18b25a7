#pragma once
// A small JSON value (RFC 8259) with a parser and a writer: enough for the descriptions bipq writes next to its
// tensors (model architecture, run index) and reads back. Numbers are doubles, written with 17 significant digits so
// that they read back bit for bit; objects keep their members in insertion order.

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace bipq::io {

/// A JSON value: null, boolean, number, string, array or object.
class json {
 public:
  using array = std::vector<json>;
  using object = std::vector<std::pair<std::string, json>>;  ///< members in insertion order

  json() = default;  ///< null
  json(std::nullptr_t) {}
  json(bool b) : v_(b) {}
  json(double d) : v_(d) {}
  json(int i) : v_(static_cast<double>(i)) {}
  json(std::size_t i) : v_(static_cast<double>(i)) {}
  json(const char* s) : v_(std::string(s)) {}
  json(std::string s) : v_(std::move(s)) {}
  json(array a) : v_(std::move(a)) {}
  json(object o) : v_(std::move(o)) {}

  static json make_object() { return json(object{}); }
  static json make_array() { return json(array{}); }

  bool is_null() const noexcept { return v_.index() == 0; }
  bool is_bool() const noexcept { return v_.index() == 1; }
  bool is_number() const noexcept { return v_.index() == 2; }
  bool is_string() const noexcept { return v_.index() == 3; }
  bool is_array() const noexcept { return v_.index() == 4; }
  bool is_object() const noexcept { return v_.index() == 5; }

  /// The value as that type; throws std::invalid_argument("json: <what> is not a ...") otherwise. `what` names the
  /// value in the message (e.g. "model.json: layers[2].kernel_size").
  bool as_bool(std::string_view what = "value") const { return get<bool>(what, "a boolean"); }
  double as_number(std::string_view what = "value") const { return get<double>(what, "a number"); }
  const std::string& as_string(std::string_view what = "value") const { return get<std::string>(what, "a string"); }
  const array& as_array(std::string_view what = "value") const { return get<array>(what, "an array"); }
  const object& as_object(std::string_view what = "value") const { return get<object>(what, "an object"); }
  /// A non-negative integer (exactly representable: at most 2^53).
  std::size_t as_size(std::string_view what = "value") const {
    const double d = as_number(what);
    if (!(d >= 0.0 && d <= 9007199254740992.0 && std::floor(d) == d))
      throw std::invalid_argument(std::string(what) + " is not a non-negative integer");
    return static_cast<std::size_t>(d);
  }

  /// Object member `key`, or null when absent (the object must be an object).
  const json* find(std::string_view key) const {
    for (const auto& [k, v] : as_object())
      if (k == key) return &v;
    return nullptr;
  }
  /// Object member `key`; throws std::invalid_argument("<what>: missing field '<key>'") when absent.
  const json& at(std::string_view key, std::string_view what = "value") const {
    if (!is_object()) throw std::invalid_argument(std::string(what) + " is not an object");
    if (const json* v = find(key)) return *v;
    throw std::invalid_argument(std::string(what) + ": missing field '" + std::string(key) + "'");
  }
  /// Sets (or replaces) object member `key`; a null value becomes an object first.
  json& set(std::string key, json value) {
    if (is_null()) v_ = object{};
    object& o = std::get<object>(v_);
    for (auto& [k, v] : o)
      if (k == key) return v = std::move(value);
    o.emplace_back(std::move(key), std::move(value));
    return o.back().second;
  }
  /// Appends to an array; a null value becomes an array first.
  json& push_back(json value) {
    if (is_null()) v_ = array{};
    array& a = std::get<array>(v_);
    a.push_back(std::move(value));
    return a.back();
  }

  /// The JSON text, indented by two spaces per level (indent < 0: on one line).
  std::string dump(int indent = 2) const {
    std::string out;
    write(out, indent, 0);
    if (indent >= 0) out += '\n';
    return out;
  }

  /// Parses `text`; throws std::invalid_argument("<what>: invalid JSON at byte N: ...") on malformed text.
  static json parse(std::string_view text, std::string_view what = "json") {
    parser p{text, 0, what};
    p.skip_space();
    json v = p.value(0);
    p.skip_space();
    if (p.pos != text.size()) p.fail("trailing characters after the value");
    return v;
  }

  friend bool operator==(const json&, const json&) = default;

 private:
  std::variant<std::nullptr_t, bool, double, std::string, array, object> v_{nullptr};

  template <class V>
  const V& get(std::string_view what, const char* type) const {
    if (const V* p = std::get_if<V>(&v_)) return *p;
    throw std::invalid_argument(std::string(what) + " is not " + type);
  }

  static void write_string(std::string& out, const std::string& s) {
    out += '"';
    for (const char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      if (c == '"') out += "\\\"";
      else if (c == '\\') out += "\\\\";
      else if (c == '\n') out += "\\n";
      else if (c == '\t') out += "\\t";
      else if (c == '\r') out += "\\r";
      else if (c < 0x20) {
        static const char* hex = "0123456789abcdef";
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 15];
      } else {
        out += ch;
      }
    }
    out += '"';
  }

  void write(std::string& out, int indent, int level) const {
    auto newline = [&](int l) {
      if (indent < 0) return;
      out += '\n';
      out.append(static_cast<std::size_t>(indent * l), ' ');
    };
    switch (v_.index()) {
      case 0: out += "null"; break;
      case 1: out += std::get<bool>(v_) ? "true" : "false"; break;
      case 2: {
        const double d = std::get<double>(v_);
        if (!std::isfinite(d)) throw std::invalid_argument("json::dump(): a number is not finite (JSON has no NaN/Inf)");
        char buf[32];
        const auto r = std::to_chars(buf, buf + sizeof buf, d);  // shortest text that reads back to the same double
        out.append(buf, r.ptr);
        break;
      }
      case 3: write_string(out, std::get<std::string>(v_)); break;
      case 4: {
        const array& a = std::get<array>(v_);
        // Arrays of numbers (shapes) stay on one line.
        bool flat = true;
        for (const json& e : a) flat = flat && (e.is_number() || e.is_bool() || e.is_null());
        out += '[';
        for (std::size_t i = 0; i < a.size(); ++i) {
          if (i > 0) out += flat || indent < 0 ? ", " : ",";
          if (!flat) newline(level + 1);
          a[i].write(out, indent, level + 1);
        }
        if (!flat && !a.empty()) newline(level);
        out += ']';
        break;
      }
      default: {
        const object& o = std::get<object>(v_);
        out += '{';
        for (std::size_t i = 0; i < o.size(); ++i) {
          if (i > 0) out += indent < 0 ? ", " : ",";
          newline(level + 1);
          write_string(out, o[i].first);
          out += ": ";
          o[i].second.write(out, indent, level + 1);
        }
        if (!o.empty()) newline(level);
        out += '}';
      }
    }
  }

  struct parser {
    std::string_view s;
    std::size_t pos;
    std::string_view what;

    [[noreturn]] void fail(const std::string& msg) const {
      throw std::invalid_argument(std::string(what) + ": invalid JSON at byte " + std::to_string(pos) + ": " + msg);
    }
    void skip_space() {
      while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\n' || s[pos] == '\t' || s[pos] == '\r')) ++pos;
    }
    void expect(char c) {
      if (pos >= s.size() || s[pos] != c) fail(std::string("expected '") + c + "'");
      ++pos;
    }
    bool literal(std::string_view word) {
      if (s.substr(pos, word.size()) != word) return false;
      pos += word.size();
      return true;
    }
    json value(int depth) {
      if (depth > 64) fail("nesting deeper than 64 levels");
      if (pos >= s.size()) fail("unexpected end of text");
      const char c = s[pos];
      if (c == '{') return json(members(depth));
      if (c == '[') return json(elements(depth));
      if (c == '"') return json(string());
      if (literal("true")) return json(true);
      if (literal("false")) return json(false);
      if (literal("null")) return json();
      return json(number());
    }
    object members(int depth) {
      object o;
      expect('{');
      skip_space();
      if (pos < s.size() && s[pos] == '}') return ++pos, o;
      for (;;) {
        skip_space();
        std::string key = string();
        skip_space();
        expect(':');
        skip_space();
        o.emplace_back(std::move(key), value(depth + 1));
        skip_space();
        if (pos < s.size() && s[pos] == ',') {
          ++pos;
          continue;
        }
        expect('}');
        return o;
      }
    }
    array elements(int depth) {
      array a;
      expect('[');
      skip_space();
      if (pos < s.size() && s[pos] == ']') return ++pos, a;
      for (;;) {
        skip_space();
        a.push_back(value(depth + 1));
        skip_space();
        if (pos < s.size() && s[pos] == ',') {
          ++pos;
          continue;
        }
        expect(']');
        return a;
      }
    }
    std::string string() {
      expect('"');
      std::string out;
      while (pos < s.size() && s[pos] != '"') {
        const auto c = static_cast<unsigned char>(s[pos]);
        if (c < 0x20) fail("control character in a string");
        if (c != '\\') {
          out += s[pos++];
          continue;
        }
        if (++pos >= s.size()) break;
        switch (s[pos++]) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            if (pos + 4 > s.size()) fail("truncated \\u escape");
            unsigned code = 0;
            const auto r = std::from_chars(s.data() + pos, s.data() + pos + 4, code, 16);
            if (r.ptr != s.data() + pos + 4) fail("bad \\u escape");
            pos += 4;
            if (code >= 0xD800 && code < 0xE000) fail("surrogate \\u escapes are not supported");
            if (code < 0x80) {
              out += static_cast<char>(code);
            } else if (code < 0x800) {
              out += static_cast<char>(0xC0 | (code >> 6));
              out += static_cast<char>(0x80 | (code & 0x3F));
            } else {
              out += static_cast<char>(0xE0 | (code >> 12));
              out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
              out += static_cast<char>(0x80 | (code & 0x3F));
            }
            break;
          }
          default: fail("bad escape in a string");
        }
      }
      expect('"');
      return out;
    }
    double number() {
      const std::size_t start = pos;
      if (pos < s.size() && s[pos] == '-') ++pos;
      auto digits = [&] {
        const std::size_t b = pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
        return pos - b;
      };
      const std::size_t int_start = pos;
      if (digits() == 0) fail("expected a value");
      if (s[int_start] == '0' && pos - int_start > 1) fail("leading zero in a number");
      if (pos < s.size() && s[pos] == '.') {
        ++pos;
        if (digits() == 0) fail("expected digits after '.'");
      }
      if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
        ++pos;
        if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) ++pos;
        if (digits() == 0) fail("expected digits in the exponent");
      }
      double d = 0.0;
      const auto r = std::from_chars(s.data() + start, s.data() + pos, d);
      if (r.ec != std::errc() || !std::isfinite(d)) fail("number out of range");
      return d;
    }
  };
};

}  // namespace bipq::io
