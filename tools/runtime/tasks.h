// The tasks the runtime can run: each mirrors one gymnasium v5 MuJoCo env (observation, reward,
// termination, reset noise) and its robotrl task card (horizon). Adding a task = one entry in tasks.cpp.
#pragma once

#include <mujoco/mujoco.h>

#include <random>
#include <string>
#include <vector>

namespace robotrl {

struct StepContext {
  const std::vector<double>& qpos_before;  // qpos when the action was applied
  const std::vector<float>& action;        // the action applied, in actuator units
  const std::vector<double>& observation;  // the observation after the step
  double dt;                               // model timestep * frame_skip
  int step;                                // steps taken in the episode, this one included
  int horizon;                             // the episode's horizon
};

struct StepOutcome {
  double reward;
  bool terminated;
  bool success = false;  // goal tasks: the achieved goal is within the success threshold after this step
};

struct Task {
  std::string name;       // robotrl task card (envs/<name>.yaml)
  std::string env_id;     // the gymnasium env it reproduces
  std::string xml_file;   // file in gymnasium/envs/mujoco/assets; empty: the scene .mjb named by the policy's card
  int frame_skip;         // mj_step calls per action
  int horizon;            // the card's horizon: steps before truncation
  int observation_width;
  // Called after mj_resetData (qpos = qpos0, qvel = 0): add the env's reset noise (goal tasks also place their
  // goal site in the model). The runtime calls mj_forward afterwards.
  void (*randomize_initial_state)(mjModel* model, mjData* data, std::mt19937_64& rng);
  std::vector<double> (*observe)(const mjModel* model, const mjData* data);
  // Called after the physics step and observe(), like the envs' step(); a task with a test at its end (panda-grasp's
  // lift) may step the physics further here.
  StepOutcome (*score)(const mjModel* model, mjData* data, const StepContext& step);
  // Tasks whose action is not one ctrl per actuator (the Panda's Cartesian commands and IK): the action width
  // (bounds [-1, 1] each) and the function that turns an action into ctrl. 0 / nullptr: ctrl = action.
  int action_width = 0;
  void (*apply_action)(const mjModel* model, mjData* data, const std::vector<float>& action) = nullptr;
  // robotrl's own envs call mj_forward after stepping (observation at the reached state); gymnasium's v5 envs
  // call mj_rnePostConstraint.
  bool forward_after_step = false;
  // Goal tasks: the width of the goal an initial state must give (placed at the model's site "goal").
  int goal_width = 0;
  // Tasks that draw an object per episode (panda-grasp): the width of the "object" an initial state must give and
  // the function that puts it into the model (after mj_resetData, before the state is copied in).
  int object_width = 0;
  void (*apply_object)(mjModel* model, mjData* data, const std::vector<double>& object) = nullptr;
  // The observation's last entry is the fraction of the horizon left, (horizon - steps) / horizon, which the
  // runtime writes (observe() cannot count steps).
  bool time_left_last = false;
};

const std::vector<Task>& all_tasks();
// The task as an export card's "control" mode ("ee", "joint") and "reward" type ("sparse", "dense") configure it
// (the Panda tasks take both; every other task only its defaults), and for panda-grasp whether the observation's
// object size is hidden (always 0). Throws RuntimeError naming what is allowed.
Task configured_task(const Task& task, const std::string& control_mode, const std::string& reward_type,
                     bool object_size_hidden = false);
// Throws RuntimeError listing the known task names.
const Task& find_task(const std::string& name);

}  // namespace robotrl
