// An exported robotrl policy (TorchScript .pt or AOTInductor .pt2), behind an interface that needs no torch headers.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace robotrl {

// A user mistake or an unusable input: main() prints what() as one line on stderr and exits 2.
struct RuntimeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class PolicyFormat { TorchScript, AOTInductor };

// "pt" or "pt2"; an empty name means: from the file's extension (.pt2 -> AOTInductor, else TorchScript).
PolicyFormat parse_policy_format(const std::string& name, const std::string& path);
const char* format_name(PolicyFormat format);

class Policy {
 public:
  // Loads FILE.pt (torch::jit::load) or FILE.pt2 (torch::inductor::AOTIModelPackageLoader) on the CPU with one
  // intra-op and one inter-op thread; throws RuntimeError.
  Policy(const std::string& path, PolicyFormat format);
  ~Policy();
  Policy(const Policy&) = delete;
  Policy& operator=(const Policy&) = delete;

  // Runs a zero observation of `observation_width` and checks that the module accepts it and returns
  // `action_width` numbers; throws RuntimeError with the module's own message otherwise.
  void check_widths(int observation_width, int action_width);

  // observation (float32, as the Python side feeds it) -> action in actuator units. Only the module's
  // forward call is timed; its duration in microseconds goes to *forward_us when given.
  std::vector<float> act(const std::vector<float>& observation, double* forward_us = nullptr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace robotrl
