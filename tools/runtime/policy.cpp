#include "policy.h"

#include <ATen/Parallel.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace robotrl {
namespace {

// TorchScript errors carry a serialized traceback; keep the line that says what went wrong.
std::string first_meaningful_line(const std::string& message) {
  for (const char* marker : {"ValueError: ", "RuntimeError: "}) {
    auto at = message.find(marker);
    if (at != std::string::npos) {
      auto end = message.find('\n', at);
      return message.substr(at, end == std::string::npos ? std::string::npos : end - at);
    }
  }
  std::string line = message.substr(0, message.find('\n'));
  return line.substr(0, line.find(". "));
}

// AOTInductor's compiled code prints "Error: <message>" on stderr before it throws the same message; while probing
// a policy, keep stderr to our one line.
class SilencedStderr {
 public:
  SilencedStderr() : saved_(dup(STDERR_FILENO)) {
    int null_fd = open("/dev/null", O_WRONLY);
    if (saved_ >= 0 && null_fd >= 0) {
      std::fflush(stderr);
      dup2(null_fd, STDERR_FILENO);
    }
    if (null_fd >= 0) close(null_fd);
  }
  ~SilencedStderr() {
    if (saved_ >= 0) {
      std::fflush(stderr);
      dup2(saved_, STDERR_FILENO);
      close(saved_);
    }
  }
  SilencedStderr(const SilencedStderr&) = delete;
  SilencedStderr& operator=(const SilencedStderr&) = delete;

 private:
  int saved_;
};

}  // namespace

PolicyFormat parse_policy_format(const std::string& name, const std::string& path) {
  if (name == "pt") return PolicyFormat::TorchScript;
  if (name == "pt2") return PolicyFormat::AOTInductor;
  if (!name.empty()) throw RuntimeError("--format must be pt or pt2, got '" + name + "'");
  bool pt2 = path.size() > 4 && path.compare(path.size() - 4, 4, ".pt2") == 0;
  return pt2 ? PolicyFormat::AOTInductor : PolicyFormat::TorchScript;
}

const char* format_name(PolicyFormat format) { return format == PolicyFormat::AOTInductor ? "pt2" : "pt"; }

struct Policy::Impl {
  PolicyFormat format;
  torch::jit::script::Module module;                             // pt
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> aoti;  // pt2
};

Policy::Policy(const std::string& path, PolicyFormat format) : impl_(std::make_unique<Impl>()) {
  impl_->format = format;
  at::set_num_threads(1);
  try {
    at::set_num_interop_threads(1);
  } catch (const c10::Error&) {
    // already set (only allowed once per process); one thread is what it was set to
  }
  if (format == PolicyFormat::AOTInductor) {
    // AOTInductor's compiled code checks input rank, sizes and dtype only when this is set (read once).
    setenv("AOTI_RUNTIME_CHECK_INPUTS", "1", 1);
    try {
      impl_->aoti = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, "model",
                                                                               /*run_single_threaded=*/true);
    } catch (const std::exception& e) {
      throw RuntimeError("cannot load policy " + path + ": not an AOTInductor package (" +
                         first_meaningful_line(e.what()) + ")");
    }
    return;
  }
  try {
    impl_->module = torch::jit::load(path, torch::kCPU);
  } catch (const std::exception& e) {
    throw RuntimeError("cannot load policy " + path + ": not a TorchScript file (" +
                       first_meaningful_line(e.what()) + ")");
  }
  impl_->module.eval();
}

Policy::~Policy() = default;

void Policy::check_widths(int observation_width, int action_width) {
  std::vector<float> zeros(observation_width, 0.0f);
  std::vector<float> action;
  try {
    SilencedStderr quiet;
    action = act(zeros);
  } catch (const RuntimeError& e) {
    throw RuntimeError("policy does not accept this task's observation (width " +
                       std::to_string(observation_width) + "): " + e.what());
  }
  if (static_cast<int>(action.size()) != action_width) {
    throw RuntimeError("policy returns " + std::to_string(action.size()) + " action values, the task has " +
                       std::to_string(action_width) + " actuators");
  }
}

std::vector<float> Policy::act(const std::vector<float>& observation, double* forward_us) {
  c10::InferenceMode inference_mode;
  const auto width = static_cast<int64_t>(observation.size());
  const bool aoti = impl_->format == PolicyFormat::AOTInductor;
  // TorchScript takes one observation [obs]; the .pt2 was exported for [batch, obs].
  torch::Tensor input = aoti ? torch::empty({1, width}, torch::kFloat32) : torch::empty({width}, torch::kFloat32);
  std::memcpy(input.data_ptr<float>(), observation.data(), observation.size() * sizeof(float));
  std::vector<at::Tensor> aoti_inputs;           // pt2
  std::vector<torch::jit::IValue> script_inputs;  // pt
  if (aoti) {
    aoti_inputs.push_back(input);
  } else {
    script_inputs.push_back(input);
  }

  torch::Tensor output;
  auto start = std::chrono::steady_clock::now();
  try {
    if (aoti) {
      output = impl_->aoti->run(aoti_inputs).at(0);
    } else {
      output = impl_->module.forward(script_inputs).toTensor();
    }
  } catch (const std::exception& e) {  // c10::Error, or torch::jit::JITException for a raise in the module
    throw RuntimeError(first_meaningful_line(e.what()));
  }
  auto stop = std::chrono::steady_clock::now();
  if (forward_us != nullptr) {
    *forward_us = std::chrono::duration<double, std::micro>(stop - start).count();
  }

  output = output.contiguous().to(torch::kFloat32).reshape({-1});
  return std::vector<float>(output.data_ptr<float>(), output.data_ptr<float>() + output.numel());
}

}  // namespace robotrl
