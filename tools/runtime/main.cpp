// robotrl_runtime: run an exported robotrl policy (TorchScript .pt or AOTInductor .pt2) on a MuJoCo task with no Python.
//
// The control loop reproduces gymnasium's v5 envs as robotrl builds them: observation (float64, fed to the
// policy as float32) -> policy (already rescaled to actuator bounds and clamped) -> ctrl -> mj_step x
// frame_skip -> mj_rnePostConstraint -> observation, reward, termination; truncation at the card's horizon.

#include <mujoco/mujoco.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "mini_json.h"
#include "policy.h"
#include "tasks.h"

namespace robotrl {
namespace {

constexpr const char* kUsage =
    "usage: robotrl_runtime --policy FILE.pt|FILE.pt2 --task TASK [--format pt|pt2] [--episodes N] [--seed S]\n"
    "                       [--initial-states FILE] [--model XML_OR_DIR] [--json] [--record FILE] [--probe-nonfinite]\n"
    "\n"
    "  --policy FILE           exported robotrl policy: NAME.pt (TorchScript) or NAME.pt2 (AOTInductor package)\n"
    "  --format pt|pt2         how to load --policy (default: from its extension)\n"
    "  --task TASK             pendulum, reach or cheetah\n"
    "  --episodes N            episodes to run (default 10, or one per initial state)\n"
    "  --seed S                episode i draws its reset noise from a C++ RNG seeded with S + i (default 0)\n"
    "  --initial-states FILE   JSON list of {\"qpos\": [...], \"qvel\": [...]}, one per episode\n"
    "  --model XML_OR_DIR      the task's MJCF file, or a directory holding it (default: $ROBOTRL_MUJOCO_ASSETS,\n"
    "                          else gymnasium's assets directory found at build time)\n"
    "  --json                  last line of stdout is one JSON object with the results\n"
    "  --record FILE           write every step's observation, action and reward as JSON\n"
    "  --probe-nonfinite       feed NaN/inf observations, print the actions as JSON, exit 3 if any is unsafe\n";

struct Options {
  std::string policy_path;
  std::string format;
  std::string task_name;
  std::optional<int> episodes;
  long long seed = 0;
  std::string initial_states_path;
  std::string model_path;
  std::string record_path;
  bool json = false;
  bool probe_nonfinite = false;
};

struct InitialState {
  std::vector<double> qpos, qvel;
  std::vector<double> goal;    // goal tasks: the episode's goal (the model's site "goal")
  std::vector<double> object;  // object tasks (panda-grasp): shape index, size x3, mass, friction
};

struct EpisodeRecord {
  InitialState initial;
  std::vector<std::vector<double>> observations;
  std::vector<std::vector<float>> actions;
  std::vector<double> rewards;
  double episode_return = 0.0;
  bool terminated = false;
  bool success = false;
};

bool is_directory(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

bool is_file(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

long long parse_integer(const std::string& option, const std::string& text, long long minimum) {
  char* end = nullptr;
  errno = 0;
  long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || value < minimum) {
    throw RuntimeError(option + " needs an integer >= " + std::to_string(minimum) + ", got '" + text + "'");
  }
  return value;
}

Options parse_options(int argc, char** argv) {
  Options options;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i], value;
    bool has_inline_value = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline_value = true;
    }
    auto next_value = [&]() -> std::string {
      if (has_inline_value) return value;
      if (i + 1 >= args.size()) throw RuntimeError(arg + " needs a value");
      return args[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (arg == "--policy") {
      options.policy_path = next_value();
    } else if (arg == "--format") {
      options.format = next_value();
    } else if (arg == "--task") {
      options.task_name = next_value();
    } else if (arg == "--episodes") {
      options.episodes = static_cast<int>(parse_integer(arg, next_value(), 1));
    } else if (arg == "--seed") {
      options.seed = parse_integer(arg, next_value(), 0);
    } else if (arg == "--initial-states") {
      options.initial_states_path = next_value();
    } else if (arg == "--model") {
      options.model_path = next_value();
    } else if (arg == "--record") {
      options.record_path = next_value();
    } else if (arg == "--json") {
      options.json = true;
    } else if (arg == "--probe-nonfinite") {
      options.probe_nonfinite = true;
    } else {
      throw RuntimeError("unknown option '" + arg + "' (see --help)");
    }
  }
  if (options.policy_path.empty()) throw RuntimeError("--policy FILE is required (see --help)");
  if (options.task_name.empty()) throw RuntimeError("--task TASK is required (see --help)");
  return options;
}

// Tasks whose scene robotrl composes in code (the Panda): export writes it as NAME.mjb beside the policy and names
// it in the card's "scene".
std::string scene_from_card(const std::string& policy_path, const Task& task) {
  std::string card_path = policy_path.substr(0, policy_path.rfind('.')) + ".json";
  if (!is_file(card_path)) {
    throw RuntimeError("task '" + task.name + "' loads its scene from the policy's card, and " + card_path +
                       " is missing (give --model SCENE.mjb)");
  }
  json::Value card = json::parse_file(card_path);
  const json::Value* scene = card.find("scene");
  const json::Value* file = scene != nullptr ? scene->find("file") : nullptr;
  if (file == nullptr || file->kind != json::Value::Kind::String) {
    throw RuntimeError("card " + card_path + " names no scene file (re-export the policy with robotrl export)");
  }
  std::string folder = policy_path.find('/') == std::string::npos ? "." : policy_path.substr(0, policy_path.rfind('/'));
  std::string path = folder + "/" + file->string;
  if (!is_file(path)) throw RuntimeError("scene " + path + " named by " + card_path + " is missing");
  return path;
}

std::string resolve_model_path(const Options& options, const Task& task) {
  if (task.xml_file.empty() && options.model_path.empty()) return scene_from_card(options.policy_path, task);
  std::string where = options.model_path, source = "--model";
  if (where.empty()) {
    const char* from_env = std::getenv("ROBOTRL_MUJOCO_ASSETS");
    where = from_env != nullptr ? from_env : ROBOTRL_DEFAULT_ASSET_DIR;
    source = from_env != nullptr ? "$ROBOTRL_MUJOCO_ASSETS" : "the build-time asset directory";
  }
  std::string path = is_directory(where) ? where + "/" + task.xml_file : where;
  if (!is_file(path)) throw RuntimeError("MuJoCo model not found: " + path + " (from " + source + ")");
  return path;
}

struct ModelDeleter {
  void operator()(mjModel* model) const { mj_deleteModel(model); }
};
struct DataDeleter {
  void operator()(mjData* data) const { mj_deleteData(data); }
};

std::unique_ptr<mjModel, ModelDeleter> load_model(const std::string& path) {
  char error[1000] = "";
  bool binary = path.size() > 4 && path.substr(path.size() - 4) == ".mjb";
  mjModel* model = binary ? mj_loadModel(path.c_str(), nullptr) : mj_loadXML(path.c_str(), nullptr, error, sizeof error);
  if (model == nullptr) throw RuntimeError("cannot load MuJoCo model " + path + (binary ? "" : ": ") + error);
  return std::unique_ptr<mjModel, ModelDeleter>(model);
}

std::vector<double> numbers(const json::Value& value, const std::string& what) {
  if (value.kind != json::Value::Kind::Array) throw RuntimeError(what + " must be a list of numbers");
  std::vector<double> out;
  for (const json::Value& item : value.array) {
    if (item.kind != json::Value::Kind::Number) throw RuntimeError(what + " must be a list of numbers");
    out.push_back(item.number);
  }
  return out;
}

std::vector<InitialState> read_initial_states(const std::string& path, const mjModel* model, const Task& task) {
  json::Value document = json::parse_file(path);
  const json::Value* list = &document;
  if (const json::Value* nested = document.find("initial_states")) list = nested;
  if (list->kind != json::Value::Kind::Array || list->array.empty()) {
    throw RuntimeError(path + ": expected a non-empty list of {\"qpos\": [...], \"qvel\": [...]}");
  }
  std::vector<InitialState> states;
  for (size_t i = 0; i < list->array.size(); ++i) {
    const json::Value& entry = list->array[i];
    std::string where = path + ": initial state " + std::to_string(i);
    const json::Value* qpos = entry.find("qpos");
    const json::Value* qvel = entry.find("qvel");
    if (qpos == nullptr || qvel == nullptr) throw RuntimeError(where + " needs \"qpos\" and \"qvel\"");
    InitialState state{numbers(*qpos, where + " qpos"), numbers(*qvel, where + " qvel"), {}, {}};
    if (task.object_width > 0) {
      const json::Value* object = entry.find("object");
      if (object == nullptr) {
        throw RuntimeError(where + " needs \"object\" (task '" + task.name + "' draws one per episode: shape, size " +
                           "x3, mass, friction)");
      }
      state.object = numbers(*object, where + " object");
      if (static_cast<int>(state.object.size()) != task.object_width) {
        throw RuntimeError(where + " has an object of " + std::to_string(state.object.size()) +
                           " values; the task's has " + std::to_string(task.object_width));
      }
    }
    if (task.goal_width > 0) {
      const json::Value* goal = entry.find("goal");
      if (goal == nullptr) throw RuntimeError(where + " needs \"goal\" (task '" + task.name + "' is goal-conditioned)");
      state.goal = numbers(*goal, where + " goal");
      if (static_cast<int>(state.goal.size()) != task.goal_width) {
        throw RuntimeError(where + " has a goal of " + std::to_string(state.goal.size()) + " values; the task's has " +
                           std::to_string(task.goal_width));
      }
    }
    if (static_cast<int>(state.qpos.size()) != model->nq || static_cast<int>(state.qvel.size()) != model->nv) {
      throw RuntimeError(where + " has " + std::to_string(state.qpos.size()) + " qpos / " +
                         std::to_string(state.qvel.size()) + " qvel values; the model has nq=" +
                         std::to_string(model->nq) + ", nv=" + std::to_string(model->nv));
    }
    states.push_back(std::move(state));
  }
  return states;
}

// card[section][key] as a string; "default" where the card predates the section.
std::string card_string(const json::Value& card, const std::string& section, const std::string& key) {
  const json::Value* block = card.find(section);
  const json::Value* value = block != nullptr ? block->find(key) : nullptr;
  if (value == nullptr) return "default";
  if (value->kind != json::Value::Kind::String) throw RuntimeError("card's " + section + "." + key + " is not a string");
  return value->string;
}

// Whether the card's observation_layout has a block of this name (panda-grasp's "object_size_hidden",
// robotrl/envs/panda_grasp.py HIDDEN_SIZE_BLOCK: the policy was trained with those entries at 0).
bool card_has_block(const json::Value& card, const std::string& name) {
  const json::Value* layout = card.find("observation_layout");
  if (layout == nullptr || layout->kind != json::Value::Kind::Array) return false;
  for (const json::Value& block : layout->array) {
    const json::Value* block_name = block.find("name");
    if (block_name != nullptr && block_name->kind == json::Value::Kind::String && block_name->string == name) {
      return true;
    }
  }
  return false;
}

// A card written by robotrl export sits next to the .pt / .pt2. When it names another task, or a frame skip that
// differs from the task table's, refuse to run; when it records a horizon (a user may have edited the task card
// before training), episodes truncate there, as evaluation in Python did. Its control mode and reward type configure
// the task (configured_task). Returns the task to run.
Task apply_card(const std::string& policy_path, const Task& task) {
  Task effective = task;
  std::string card_path = policy_path;
  auto dot = card_path.rfind('.');
  if (dot == std::string::npos || (card_path.substr(dot) != ".pt" && card_path.substr(dot) != ".pt2")) {
    return effective;
  }
  card_path.replace(dot, std::string::npos, ".json");
  if (!is_file(card_path)) return effective;
  json::Value card = json::parse_file(card_path);
  const json::Value* card_task = card.find("task");
  // a policy trained on the env itself (gymnasium.make(env_id, ...)) names the env id instead of the card
  if (card_task != nullptr && card_task->kind == json::Value::Kind::String && card_task->string != task.name &&
      card_task->string != task.env_id) {
    throw RuntimeError("policy " + policy_path + " was trained on task '" + card_task->string + "' (" +
                       card_path + "), not '" + task.name + "'");
  }
  if (card.find("pixel_input") != nullptr) {
    throw RuntimeError("policy " + policy_path + " observes camera pixels (" + card_path + " has pixel_input); the " +
                       "runtime runs '" + task.name + "' from state observations only");
  }
  const json::Value* frame_skip = card.find("frame_skip");
  if (frame_skip != nullptr && frame_skip->kind == json::Value::Kind::Number &&
      static_cast<int>(frame_skip->number) != task.frame_skip) {
    throw RuntimeError("policy " + policy_path + " was trained with frame_skip " +
                       std::to_string(static_cast<int>(frame_skip->number)) + " (" + card_path + "); the runtime's '" +
                       task.name + "' steps " + std::to_string(task.frame_skip) + " (tools/runtime/tasks.cpp)");
  }
  const json::Value* horizon = card.find("horizon");
  if (horizon != nullptr && horizon->kind == json::Value::Kind::Number) {
    if (horizon->number < 1 || horizon->number != static_cast<int>(horizon->number)) {
      throw RuntimeError("card " + card_path + " has horizon " + json::number(horizon->number) +
                         "; a horizon is a positive whole number of steps");
    }
    effective.horizon = static_cast<int>(horizon->number);
  }
  return configured_task(effective, card_string(card, "control", "mode"), card_string(card, "reward", "type"),
                         card_has_block(card, "object_size_hidden"));
}

// The action's bounds: each actuator's ctrlrange (a dimension without limits gets +-inf), or [-1, 1] per dimension
// for tasks that turn their action into ctrl themselves.
struct ActionBounds {
  std::vector<float> low, high;
};

ActionBounds action_bounds(const mjModel* model, const Task& task) {
  if (task.action_width > 0) {
    return {std::vector<float>(task.action_width, -1.0f), std::vector<float>(task.action_width, 1.0f)};
  }
  ActionBounds bounds{std::vector<float>(model->nu, -HUGE_VALF), std::vector<float>(model->nu, HUGE_VALF)};
  for (int i = 0; i < model->nu; ++i) {
    if (!model->actuator_ctrllimited[i]) continue;
    bounds.low[i] = static_cast<float>(model->actuator_ctrlrange[2 * i]);
    bounds.high[i] = static_cast<float>(model->actuator_ctrlrange[2 * i + 1]);
  }
  return bounds;
}

std::vector<float> action_midpoint(const mjModel* model, const Task& task) {
  if (task.action_width > 0) return std::vector<float>(task.action_width, 0.0f);
  std::vector<float> midpoint(model->nu);
  for (int i = 0; i < model->nu; ++i) {
    midpoint[i] = static_cast<float>(0.5 * (model->actuator_ctrlrange[2 * i] + model->actuator_ctrlrange[2 * i + 1]));
  }
  return midpoint;
}

// The exported module already clamps and maps non-finite input to the midpoint; this second guard keeps
// the robot safe with a policy that does not. Returns whether the action had to be replaced or clamped.
bool make_action_safe(const ActionBounds& bounds, const std::vector<float>& midpoint, std::vector<float>& action) {
  bool finite = std::all_of(action.begin(), action.end(), [](float a) { return std::isfinite(a); });
  if (!finite) {
    action = midpoint;
    return true;
  }
  bool changed = false;
  for (size_t i = 0; i < action.size(); ++i) {
    float clamped = std::min(std::max(action[i], bounds.low[i]), bounds.high[i]);
    changed = changed || clamped != action[i];
    action[i] = clamped;
  }
  return changed;
}

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  double position = q * static_cast<double>(values.size() - 1);  // numpy's default (linear) method
  size_t below = static_cast<size_t>(std::floor(position));
  size_t above = std::min(below + 1, values.size() - 1);
  return values[below] + (position - static_cast<double>(below)) * (values[above] - values[below]);
}

std::vector<float> to_float(const std::vector<double>& values) {
  return std::vector<float>(values.begin(), values.end());
}

int probe_nonfinite(Policy& policy, const Task& task, const mjModel* model) {
  const double nan = std::nan(""), inf = HUGE_VAL;
  std::vector<std::pair<std::string, std::vector<double>>> probes = {
      {"all_nan", std::vector<double>(task.observation_width, nan)},
      {"first_nan", std::vector<double>(task.observation_width, 0.1)},
      {"first_inf", std::vector<double>(task.observation_width, 0.1)},
      {"last_minus_inf", std::vector<double>(task.observation_width, 0.1)},
  };
  probes[1].second.front() = nan;
  probes[2].second.front() = inf;
  probes[3].second.back() = -inf;
  std::vector<float> midpoint = action_midpoint(model, task);
  bool all_safe = true;
  std::string out = "{\"task\": " + json::quote(task.name) + ", \"midpoint\": " + json::array(midpoint) +
                    ", \"probes\": [";
  for (size_t p = 0; p < probes.size(); ++p) {
    std::vector<float> raw = policy.act(to_float(probes[p].second));
    bool safe = raw == midpoint;
    all_safe = all_safe && safe;
    std::vector<float> applied = raw;
    make_action_safe(action_bounds(model, task), midpoint, applied);
    std::string raw_text = "[";
    for (size_t i = 0; i < raw.size(); ++i) {  // spell NaN out: json::array would write null
      raw_text += (i ? ", " : "") + (std::isfinite(raw[i]) ? json::number(raw[i]) : std::string("\"nan\""));
    }
    out += std::string(p ? ", " : "") + "{\"name\": " + json::quote(probes[p].first) +
           ", \"policy_action\": " + raw_text + "], \"applied_action\": " + json::array(applied) +
           ", \"is_midpoint\": " + (safe ? "true" : "false") + "}";
  }
  out += std::string("], \"ok\": ") + (all_safe ? "true" : "false") + "}";
  std::cout << out << std::endl;
  if (!all_safe) {
    std::cerr << "robotrl_runtime: error: the policy does not map non-finite observations to the bounds' "
                 "midpoint (the runtime's guard still would)"
              << std::endl;
    return 3;
  }
  return 0;
}

void write_record(const std::string& path, const Options& options, const Task& task,
                  const std::vector<EpisodeRecord>& episodes) {
  std::ofstream out(path);
  if (!out) throw RuntimeError("cannot write --record file " + path);
  out << "{\"task\": " << json::quote(task.name) << ", \"policy\": " << json::quote(options.policy_path)
      << ", \"episodes\": [\n";
  for (size_t e = 0; e < episodes.size(); ++e) {
    const EpisodeRecord& episode = episodes[e];
    out << (e ? ",\n" : "") << "{\"qpos\": " << json::array(episode.initial.qpos)
        << ", \"qvel\": " << json::array(episode.initial.qvel)
        << ", \"return\": " << json::number(episode.episode_return)
        << ", \"terminated\": " << (episode.terminated ? "true" : "false")
        << ", \"rewards\": " << json::array(episode.rewards) << ",\n\"observations\": [";
    for (size_t t = 0; t < episode.observations.size(); ++t) {
      out << (t ? ",\n" : "") << json::array(episode.observations[t]);
    }
    out << "],\n\"actions\": [";
    for (size_t t = 0; t < episode.actions.size(); ++t) out << (t ? ",\n" : "") << json::array(episode.actions[t]);
    out << "]}";
  }
  out << "]}\n";
  if (!out) throw RuntimeError("failed writing --record file " + path);
}

void mujoco_error(const char* message) {
  std::cerr << "robotrl_runtime: error: MuJoCo: " << message << std::endl;
  std::exit(2);
}

void mujoco_warning(const char* message) { std::cerr << "robotrl_runtime: MuJoCo warning: " << message << std::endl; }

int run(int argc, char** argv) {
  mju_user_error = mujoco_error;
  mju_user_warning = mujoco_warning;
  if (mj_version() != mjVERSION_HEADER) {
    throw RuntimeError("libmujoco version " + std::to_string(mj_version()) + " does not match the headers (" +
                       std::to_string(mjVERSION_HEADER) + "); rebuild with tools/runtime/build.sh");
  }
  Options options = parse_options(argc, argv);
  const Task& table_task = find_task(options.task_name);
  if (!is_file(options.policy_path)) throw RuntimeError("policy file not found: " + options.policy_path);
  std::string model_path = resolve_model_path(options, table_task);
  auto model = load_model(model_path);
  std::unique_ptr<mjData, DataDeleter> data(mj_makeData(model.get()));

  PolicyFormat format = parse_policy_format(options.format, options.policy_path);
  Policy policy(options.policy_path, format);
  const Task task = apply_card(options.policy_path, table_task);
  policy.check_widths(task.observation_width, task.action_width > 0 ? task.action_width : model->nu);
  if (options.probe_nonfinite) return probe_nonfinite(policy, task, model.get());

  std::vector<InitialState> initial_states;
  if (!options.initial_states_path.empty()) initial_states = read_initial_states(options.initial_states_path, model.get(), task);
  int episodes = options.episodes.value_or(initial_states.empty() ? 10 : static_cast<int>(initial_states.size()));
  if (!initial_states.empty() && episodes > static_cast<int>(initial_states.size())) {
    throw RuntimeError("--episodes " + std::to_string(episodes) + " but " + options.initial_states_path + " holds " +
                       std::to_string(initial_states.size()) + " initial states");
  }

  // The profiling graph executor specialises the module on its first calls; keep those out of the timings.
  for (int i = 0; i < 20; ++i) policy.act(std::vector<float>(task.observation_width, 0.0f));

  const double dt = model->opt.timestep * task.frame_skip;
  const ActionBounds bounds = action_bounds(model.get(), task);
  const std::vector<float> midpoint = action_midpoint(model.get(), task);
  std::vector<double> latencies_us;
  std::vector<EpisodeRecord> records;
  long long unsafe_actions = 0;
  for (int episode = 0; episode < episodes; ++episode) {
    mj_resetData(model.get(), data.get());
    if (!initial_states.empty()) {
      if (task.object_width > 0) task.apply_object(model.get(), data.get(), initial_states[episode].object);
      std::copy(initial_states[episode].qpos.begin(), initial_states[episode].qpos.end(), data->qpos);
      std::copy(initial_states[episode].qvel.begin(), initial_states[episode].qvel.end(), data->qvel);
      if (task.goal_width > 0) {
        int goal = mj_name2id(model.get(), mjOBJ_SITE, "goal");
        if (goal < 0) throw RuntimeError("task '" + task.name + "' has a goal, and its model no site named 'goal'");
        std::copy(initial_states[episode].goal.begin(), initial_states[episode].goal.end(), model->site_pos + 3 * goal);
      }
    } else {
      std::mt19937_64 rng(static_cast<unsigned long long>(options.seed + episode));
      task.randomize_initial_state(model.get(), data.get(), rng);
    }
    mj_forward(model.get(), data.get());

    EpisodeRecord record;
    record.initial = {std::vector<double>(data->qpos, data->qpos + model->nq),
                      std::vector<double>(data->qvel, data->qvel + model->nv)};
    std::vector<double> observation = task.observe(model.get(), data.get());
    if (task.time_left_last) observation.back() = 1.0;
    for (int t = 0; t < task.horizon; ++t) {
      double forward_us = 0.0;
      std::vector<float> action = policy.act(to_float(observation), &forward_us);
      latencies_us.push_back(forward_us);
      unsafe_actions += make_action_safe(bounds, midpoint, action);
      if (!options.record_path.empty()) {
        record.observations.push_back(observation);
        record.actions.push_back(action);
      }

      std::vector<double> qpos_before(data->qpos, data->qpos + model->nq);
      if (task.apply_action != nullptr) {
        task.apply_action(model.get(), data.get(), action);
      } else {
        for (int i = 0; i < model->nu; ++i) data->ctrl[i] = action[i];
      }
      for (int i = 0; i < task.frame_skip; ++i) mj_step(model.get(), data.get());
      if (task.forward_after_step) {
        mj_forward(model.get(), data.get());  // robotrl's envs observe the reached state
      } else {
        mj_rnePostConstraint(model.get(), data.get());  // as gymnasium does (cacc, cfrc_*)
      }

      observation = task.observe(model.get(), data.get());
      if (task.time_left_last) observation.back() = static_cast<double>(task.horizon - (t + 1)) / task.horizon;
      StepOutcome outcome = task.score(model.get(), data.get(), {qpos_before, action, observation, dt, t + 1,
                                                                 task.horizon});
      record.rewards.push_back(outcome.reward);
      record.episode_return += outcome.reward;
      record.success = outcome.success;  // an episode succeeds where its last step does, as info["is_success"]
      if (outcome.terminated) {
        record.terminated = true;
        break;
      }
    }
    std::printf("episode %d: return %.6f, %zu steps%s\n", episode, record.episode_return, record.rewards.size(),
                record.terminated ? " (terminated)" : "");
    records.push_back(std::move(record));
  }

  std::vector<double> returns;
  for (const EpisodeRecord& record : records) returns.push_back(record.episode_return);
  double mean_return = 0.0;
  for (double r : returns) mean_return += r / static_cast<double>(returns.size());
  double p50 = percentile(latencies_us, 0.50), p99 = percentile(latencies_us, 0.99);
  std::printf("mean return %.6f over %d episodes\n", mean_return, episodes);
  int successes = 0;
  for (const EpisodeRecord& record : records) successes += record.success ? 1 : 0;
  const bool goal_task = task.goal_width > 0 || task.object_width > 0;  // the tasks that judge success
  if (goal_task) std::printf("success %d of %d episodes\n", successes, episodes);
  std::printf("policy latency (forward call only, batch 1, 1 thread): p50 %.1f us, p99 %.1f us over %zu actions\n",
              p50, p99, latencies_us.size());
  if (unsafe_actions > 0) {
    std::printf("runtime guard replaced or clamped %lld non-finite or out-of-bounds actions\n", unsafe_actions);
  }
  if (!options.record_path.empty()) write_record(options.record_path, options, task, records);
  if (options.json) {
    std::printf(
        "{\"task\": %s, \"policy\": %s, \"format\": \"%s\", \"model\": %s, \"episodes\": %d, \"reset\": %s, "
        "\"seed\": %lld, "
        "\"returns\": %s, \"mean_return\": %s, \"latency_us_p50\": %s, \"latency_us_p99\": %s, "
        "\"actions_timed\": %zu, \"unsafe_actions\": %lld%s}\n",
        json::quote(task.name).c_str(), json::quote(options.policy_path).c_str(), format_name(format),
        json::quote(model_path).c_str(), episodes, initial_states.empty() ? "\"rng\"" : "\"initial-states\"", options.seed,
        json::array(returns).c_str(), json::number(mean_return).c_str(), json::number(p50).c_str(),
        json::number(p99).c_str(), latencies_us.size(), unsafe_actions,
        goal_task ? (", \"success_rate\": " + json::number(static_cast<double>(successes) / episodes)).c_str() : "");
  }
  std::fflush(stdout);
  return 0;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace
}  // namespace robotrl

int main(int argc, char** argv) {
  try {
    return robotrl::run(argc, argv);
  } catch (const robotrl::RuntimeError& e) {
    std::cerr << "robotrl_runtime: error: " << robotrl::first_line(e.what()) << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "robotrl_runtime: error: " << robotrl::first_line(e.what()) << std::endl;
    return 1;
  }
}
