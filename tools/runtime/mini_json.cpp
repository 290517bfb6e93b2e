#include "mini_json.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "policy.h"

namespace robotrl::json {
namespace {

class Parser {
 public:
  Parser(const std::string& text, const std::string& source) : text_(text), source_(source) {}

  Value document() {
    Value value = parse_value();
    skip_space();
    if (pos_ != text_.size()) fail("unexpected trailing characters");
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw RuntimeError(source_ + ": invalid JSON at byte " + std::to_string(pos_) + ": " + what);
  }

  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }

  bool consume(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  void expect(char c) {
    if (!consume(c)) fail(std::string("expected '") + c + "'");
  }

  bool consume_word(const char* word) {
    std::string w(word);
    if (text_.compare(pos_, w.size(), w) == 0) {
      pos_ += w.size();
      return true;
    }
    return false;
  }

  Value parse_value() {
    skip_space();
    if (pos_ >= text_.size()) fail("unexpected end of input");
    Value value;
    char c = text_[pos_];
    if (c == '{') {
      ++pos_;
      value.kind = Value::Kind::Object;
      if (consume('}')) return value;
      do {
        skip_space();
        std::string key = parse_string();
        expect(':');
        value.object[key] = parse_value();
      } while (consume(','));
      expect('}');
    } else if (c == '[') {
      ++pos_;
      value.kind = Value::Kind::Array;
      if (consume(']')) return value;
      do {
        value.array.push_back(parse_value());
      } while (consume(','));
      expect(']');
    } else if (c == '"') {
      value.kind = Value::Kind::String;
      value.string = parse_string();
    } else if (consume_word("true")) {
      value.kind = Value::Kind::Bool;
      value.boolean = true;
    } else if (consume_word("false")) {
      value.kind = Value::Kind::Bool;
    } else if (consume_word("null")) {
      value.kind = Value::Kind::Null;
    } else {
      // Python's json module writes NaN / Infinity / -Infinity; strtod reads them too.
      const char* begin = text_.c_str() + pos_;
      char* end = nullptr;
      value.number = std::strtod(begin, &end);
      if (end == begin) fail("expected a value");
      value.kind = Value::Kind::Number;
      pos_ += static_cast<size_t>(end - begin);
    }
    return value;
  }

  std::string parse_string() {
    if (pos_ >= text_.size() || text_[pos_] != '"') fail("expected a string");
    ++pos_;
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != '"') {
      char c = text_[pos_++];
      if (c == '\\' && pos_ < text_.size()) {
        char e = text_[pos_++];
        switch (e) {
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case 'r': out += '\r'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'u': out += '?'; pos_ += 4; break;  // non-ASCII is never meaningful to the runtime
          default: out += e;
        }
      } else {
        out += c;
      }
    }
    if (pos_ >= text_.size()) fail("unterminated string");
    ++pos_;
    return out;
  }

  const std::string& text_;
  const std::string& source_;
  size_t pos_ = 0;
};

}  // namespace

const Value* Value::find(const std::string& key) const {
  if (kind != Kind::Object) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &it->second;
}

Value parse(const std::string& text, const std::string& source) { return Parser(text, source).document(); }

Value parse_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw RuntimeError("cannot read " + path + ": no such file or not readable");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse(buffer.str(), path);
}

std::string number(double value) {
  if (!std::isfinite(value)) return "null";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  return buffer;
}

std::string array(const std::vector<double>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + number(values[i]);
  return out + "]";
}

std::string array(const std::vector<float>& values) {
  return array(std::vector<double>(values.begin(), values.end()));
}

std::string quote(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
      out += buffer;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace robotrl::json
