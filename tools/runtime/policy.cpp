#include "policy.h"

#include <ATen/Parallel.h>
#include <torch/script.h>

#include <chrono>
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

}  // namespace

struct Policy::Impl {
  torch::jit::script::Module module;
};

Policy::Policy(const std::string& path) : impl_(std::make_unique<Impl>()) {
  at::set_num_threads(1);
  try {
    at::set_num_interop_threads(1);
  } catch (const c10::Error&) {
    // already set (only allowed once per process); one thread is what it was set to
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
  torch::Tensor input = torch::empty({static_cast<int64_t>(observation.size())}, torch::kFloat32);
  std::memcpy(input.data_ptr<float>(), observation.data(), observation.size() * sizeof(float));
  std::vector<torch::jit::IValue> inputs{input};

  torch::Tensor output;
  auto start = std::chrono::steady_clock::now();
  try {
    output = impl_->module.forward(inputs).toTensor();
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
