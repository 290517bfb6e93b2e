// Just enough JSON for the runtime's inputs (initial-state files, policy cards) and outputs.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace robotrl::json {

struct Value {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<Value> array;
  std::map<std::string, Value> object;

  const Value* find(const std::string& key) const;  // nullptr when absent or not an object
};

// Throws robotrl::RuntimeError naming `source` and the byte offset on malformed input.
Value parse(const std::string& text, const std::string& source);
Value parse_file(const std::string& path);

// Shortest text that reads back as the same double (%.17g); non-finite numbers become null.
std::string number(double value);
std::string array(const std::vector<double>& values);
std::string array(const std::vector<float>& values);
std::string quote(const std::string& text);

}  // namespace robotrl::json
