#include "tasks.h"

#include <cmath>

#include "policy.h"

namespace robotrl {
namespace {

double uniform(std::mt19937_64& rng, double low, double high) {
  return std::uniform_real_distribution<double>(low, high)(rng);
}

const double* body_position(const mjModel* model, const mjData* data, const char* body) {
  int id = mj_name2id(model, mjOBJ_BODY, body);
  if (id < 0) throw RuntimeError(std::string("MuJoCo model has no body named '") + body + "'");
  return data->xpos + 3 * id;
}

// gymnasium computes these in float32 (numpy squares and sums the float32 action).
float sum_of_squares(const std::vector<float>& action) {
  float total = 0.0f;
  for (float a : action) total += a * a;
  return total;
}

bool all_finite(const std::vector<double>& values) {
  for (double v : values) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

// InvertedPendulum-v5: obs = [qpos, qvel]; +1 per step while |pole angle| <= 0.2 and the state is finite.
void pendulum_reset(const mjModel* model, mjData* data, std::mt19937_64& rng) {
  const double noise = 0.01;
  for (int i = 0; i < model->nq; ++i) data->qpos[i] += uniform(rng, -noise, noise);
  for (int i = 0; i < model->nv; ++i) data->qvel[i] += uniform(rng, -noise, noise);
}

std::vector<double> pendulum_observe(const mjModel* model, const mjData* data) {
  std::vector<double> obs(data->qpos, data->qpos + model->nq);
  obs.insert(obs.end(), data->qvel, data->qvel + model->nv);
  return obs;
}

StepOutcome pendulum_score(const mjModel*, const mjData*, const StepContext& step) {
  bool terminated = !all_finite(step.observation) || std::abs(step.observation[1]) > 0.2;
  return {terminated ? 0.0 : 1.0, terminated};
}

// Reacher-v5: obs = [cos(q0, q1), sin(q0, q1), target xy (qpos[2:4]), qvel[0:2], (fingertip - target)_xy];
// reward = -|fingertip - target| - |action|^2 (gymnasium's default weights 1 and 1); never terminates.
void reach_reset(const mjModel* model, mjData* data, std::mt19937_64& rng) {
  for (int i = 0; i < model->nq; ++i) data->qpos[i] += uniform(rng, -0.1, 0.1);
  double goal_x = 0.0, goal_y = 0.0;
  do {
    goal_x = uniform(rng, -0.2, 0.2);
    goal_y = uniform(rng, -0.2, 0.2);
  } while (std::hypot(goal_x, goal_y) >= 0.2);
  data->qpos[model->nq - 2] = goal_x;
  data->qpos[model->nq - 1] = goal_y;
  for (int i = 0; i < model->nv; ++i) data->qvel[i] += uniform(rng, -0.005, 0.005);
  data->qvel[model->nv - 2] = data->qvel[model->nv - 1] = 0.0;
}

std::vector<double> reach_observe(const mjModel* model, const mjData* data) {
  const double* fingertip = body_position(model, data, "fingertip");
  const double* target = body_position(model, data, "target");
  return {std::cos(data->qpos[0]), std::cos(data->qpos[1]), std::sin(data->qpos[0]), std::sin(data->qpos[1]),
          data->qpos[2], data->qpos[3], data->qvel[0], data->qvel[1],
          fingertip[0] - target[0], fingertip[1] - target[1]};
}

StepOutcome reach_score(const mjModel* model, const mjData* data, const StepContext& step) {
  const double* fingertip = body_position(model, data, "fingertip");
  const double* target = body_position(model, data, "target");
  double dx = fingertip[0] - target[0], dy = fingertip[1] - target[1], dz = fingertip[2] - target[2];
  double reward_distance = -std::sqrt(dx * dx + dy * dy + dz * dz);
  double reward_control = -static_cast<double>(sum_of_squares(step.action));
  return {reward_distance + reward_control, false};
}

// HalfCheetah-v5: obs = [qpos[1:], qvel]; reward = forward x velocity - 0.1 |action|^2; never terminates.
void cheetah_reset(const mjModel* model, mjData* data, std::mt19937_64& rng) {
  const double noise = 0.1;
  std::normal_distribution<double> standard_normal(0.0, 1.0);
  for (int i = 0; i < model->nq; ++i) data->qpos[i] += uniform(rng, -noise, noise);
  for (int i = 0; i < model->nv; ++i) data->qvel[i] += noise * standard_normal(rng);
}

std::vector<double> cheetah_observe(const mjModel* model, const mjData* data) {
  std::vector<double> obs(data->qpos + 1, data->qpos + model->nq);
  obs.insert(obs.end(), data->qvel, data->qvel + model->nv);
  return obs;
}

StepOutcome cheetah_score(const mjModel*, const mjData* data, const StepContext& step) {
  double forward_velocity = (data->qpos[0] - step.qpos_before[0]) / step.dt;
  float control_cost = 0.1f * sum_of_squares(step.action);
  return {forward_velocity - static_cast<double>(control_cost), false};
}

}  // namespace

const std::vector<Task>& all_tasks() {
  static const std::vector<Task> tasks = {
      {"pendulum", "InvertedPendulum-v5", "inverted_pendulum.xml", 2, 1000, 4,
       pendulum_reset, pendulum_observe, pendulum_score},
      {"reach", "Reacher-v5", "reacher.xml", 2, 50, 10, reach_reset, reach_observe, reach_score},
      {"cheetah", "HalfCheetah-v5", "half_cheetah.xml", 5, 1000, 17, cheetah_reset, cheetah_observe,
       cheetah_score},
  };
  return tasks;
}

const Task& find_task(const std::string& name) {
  std::string known;
  for (const Task& task : all_tasks()) {
    if (task.name == name) return task;
    known += (known.empty() ? "" : ", ") + task.name;
  }
  throw RuntimeError("unknown task '" + name + "'; known tasks: " + known);
}

}  // namespace robotrl
