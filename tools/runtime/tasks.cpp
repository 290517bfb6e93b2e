#include "tasks.h"

#include <algorithm>
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
void pendulum_reset(mjModel* model, mjData* data, std::mt19937_64& rng) {
  const double noise = 0.01;
  for (int i = 0; i < model->nq; ++i) data->qpos[i] += uniform(rng, -noise, noise);
  for (int i = 0; i < model->nv; ++i) data->qvel[i] += uniform(rng, -noise, noise);
}

std::vector<double> pendulum_observe(const mjModel* model, const mjData* data) {
  std::vector<double> obs(data->qpos, data->qpos + model->nq);
  obs.insert(obs.end(), data->qvel, data->qvel + model->nv);
  return obs;
}

StepOutcome pendulum_score(const mjModel*, mjData*, const StepContext& step) {
  bool terminated = !all_finite(step.observation) || std::abs(step.observation[1]) > 0.2;
  return {terminated ? 0.0 : 1.0, terminated};
}

// Reacher-v5: obs = [cos(q0, q1), sin(q0, q1), target xy (qpos[2:4]), qvel[0:2], (fingertip - target)_xy];
// reward = -|fingertip - target| - |action|^2 (gymnasium's default weights 1 and 1); never terminates.
void reach_reset(mjModel* model, mjData* data, std::mt19937_64& rng) {
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

StepOutcome reach_score(const mjModel* model, mjData* data, const StepContext& step) {
  const double* fingertip = body_position(model, data, "fingertip");
  const double* target = body_position(model, data, "target");
  double dx = fingertip[0] - target[0], dy = fingertip[1] - target[1], dz = fingertip[2] - target[2];
  double reward_distance = -std::sqrt(dx * dx + dy * dy + dz * dz);
  double reward_control = -static_cast<double>(sum_of_squares(step.action));
  return {reward_distance + reward_control, false};
}

// HalfCheetah-v5: obs = [qpos[1:], qvel]; reward = forward x velocity - 0.1 |action|^2; never terminates.
void cheetah_reset(mjModel* model, mjData* data, std::mt19937_64& rng) {
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

StepOutcome cheetah_score(const mjModel*, mjData* data, const StepContext& step) {
  double forward_velocity = (data->qpos[0] - step.qpos_before[0]) / step.dt;
  float control_cost = 0.1f * sum_of_squares(step.action);
  return {forward_velocity - static_cast<double>(control_cost), false};
}

// robotrl/envs/panda.py, panda-reach with end-effector control and the sparse reward. Constants as there.
constexpr double kPandaMaxTcpStep = 0.05;
constexpr double kPandaWorkspaceLow[3] = {0.25, -0.3, 0.005};
constexpr double kPandaWorkspaceHigh[3] = {0.7, 0.3, 0.45};
constexpr double kPandaStartTcp[3] = {0.45, 0.0, 0.2};
constexpr double kPandaGoalHalfRange = 0.15;
constexpr double kPandaFingerMax = 0.04;
constexpr double kPandaIkDamping = 0.05;
constexpr double kPandaIkNullspaceGain = 0.1;
constexpr double kPandaIkMaxJointStep = 0.3;
constexpr double kPandaMaxJointStep = 0.1;  // joint control: radians per control step at action 1
constexpr double kPandaHomeQpos[7] = {0.0, 0.3, 0.0, -1.57079, 0.0, 2.0, -0.7853};
constexpr double kPandaTcpRotation[3][3] = {{0.0, 1.0, 0.0}, {1.0, 0.0, 0.0}, {0.0, 0.0, -1.0}};
constexpr double kPandaReachThreshold = 0.02;
constexpr double kPandaCubeThreshold = 0.05;
constexpr double kPandaCubeHalf = 0.02;
constexpr double kPandaTableLow[2] = {0.35, -0.15};  // PandaPushEnv.goal_low / goal_high (x, y)
constexpr double kPandaTableHigh[2] = {0.6, 0.15};
constexpr double kPandaMinGoalDistance = 0.1;
constexpr double kPandaPickGoalTop = kPandaCubeHalf + 0.25;

int named_id(const mjModel* model, mjtObj type, const std::string& name) {
  int id = mj_name2id(model, type, name.c_str());
  if (id < 0) throw RuntimeError("MuJoCo model has no " + std::string(mju_type2Str(type)) + " named '" + name + "'");
  return id;
}

struct PandaIndex {
  int tcp, goal, finger_qpos, finger_dof, qadr[7], dadr[7];
  double low[7], high[7];
};

PandaIndex panda_index(const mjModel* model) {
  PandaIndex index{};
  index.tcp = named_id(model, mjOBJ_SITE, "panda/tcp");
  index.goal = named_id(model, mjOBJ_SITE, "goal");
  int finger = named_id(model, mjOBJ_JOINT, "panda/finger_joint1");
  index.finger_qpos = model->jnt_qposadr[finger];
  index.finger_dof = model->jnt_dofadr[finger];
  for (int j = 0; j < 7; ++j) {
    int joint = named_id(model, mjOBJ_JOINT, "panda/joint" + std::to_string(j + 1));
    index.qadr[j] = model->jnt_qposadr[joint];
    index.dadr[j] = model->jnt_dofadr[joint];
    index.low[j] = model->jnt_range[2 * joint];
    index.high[j] = model->jnt_range[2 * joint + 1];
  }
  return index;
}

// The ids are looked up once per model, not on every step.
const PandaIndex& cached_panda_index(const mjModel* model) {
  static thread_local const mjModel* indexed = nullptr;
  static thread_local PandaIndex index{};
  if (indexed != model) index = panda_index(model), indexed = model;
  return index;
}

double clip(double value, double low, double high) { return std::min(std::max(value, low), high); }

// panda.PandaIK.joint_targets: the same MuJoCo calls in the same order, so the same bits.
void panda_ik(const mjModel* model, const mjData* data, const PandaIndex& index, const double target[3],
              double out[7], const double (&target_rotation)[3][3] = kPandaTcpRotation) {
  std::vector<mjtNum> jacp(3 * model->nv), jacr(3 * model->nv);
  mj_jacSite(model, data, jacp.data(), jacr.data(), index.tcp);
  mjtNum jac[6 * 7];
  for (int j = 0; j < 7; ++j) {
    for (int r = 0; r < 3; ++r) {
      jac[r * 7 + j] = jacp[r * model->nv + index.dadr[j]];
      jac[(r + 3) * 7 + j] = jacr[r * model->nv + index.dadr[j]];
    }
  }
  const mjtNum* pos = data->site_xpos + 3 * index.tcp;
  const mjtNum* rot = data->site_xmat + 9 * index.tcp;  // row-major: rot[3 * i + k] = R[i][k]
  mjtNum error[6];
  for (int i = 0; i < 3; ++i) error[i] = target[i] - pos[i];
  mjtNum cross_sum[3] = {0.0, 0.0, 0.0};
  for (int k = 0; k < 3; ++k) {  // 0.5 * sum_k R[:, k] x R*[:, k], summed in numpy's order
    mjtNum a[3] = {rot[k], rot[3 + k], rot[6 + k]};
    mjtNum b[3] = {target_rotation[0][k], target_rotation[1][k], target_rotation[2][k]};
    mjtNum c[3] = {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
    for (int i = 0; i < 3; ++i) cross_sum[i] = k == 0 ? c[i] : cross_sum[i] + c[i];
  }
  for (int i = 0; i < 3; ++i) error[3 + i] = 0.5 * cross_sum[i];
  mjtNum q[7];
  for (int j = 0; j < 7; ++j) q[j] = data->qpos[index.qadr[j]];
  mjtNum damped[36];
  mju_mulMatMatT(damped, jac, jac, 6, 7, 6);
  const double damping_squared = kPandaIkDamping * kPandaIkDamping;
  for (int i = 0; i < 6; ++i) damped[i * 6 + i] += damping_squared;
  mju_cholFactor(damped, 6, 0.0);
  mjtNum step[6], dq[7], pull[7], moved[6], back[7];
  mju_cholSolve(step, damped, error, 6);
  mju_mulMatTVec(dq, jac, step, 6, 7);
  for (int j = 0; j < 7; ++j) pull[j] = kPandaIkNullspaceGain * (kPandaHomeQpos[j] - q[j]);
  mju_mulMatVec(moved, jac, pull, 6, 7);
  mju_cholSolve(step, damped, moved, 6);
  mju_mulMatTVec(back, jac, step, 6, 7);
  for (int j = 0; j < 7; ++j) {
    double change = clip(dq[j] + (pull[j] - back[j]), -kPandaIkMaxJointStep, kPandaIkMaxJointStep);
    out[j] = clip(q[j] + change, index.low[j], index.high[j]);
  }
}

void panda_reach_reset(mjModel* model, mjData* data, std::mt19937_64& rng) {
  int home = named_id(model, mjOBJ_KEY, "home");
  mju_copy(data->qpos, model->key_qpos + home * model->nq, model->nq);
  mju_copy(data->ctrl, model->key_ctrl + home * model->nu, model->nu);
  int goal = named_id(model, mjOBJ_SITE, "goal");
  for (int i = 0; i < 3; ++i) {
    model->site_pos[3 * goal + i] =
        uniform(rng, kPandaStartTcp[i] - kPandaGoalHalfRange, kPandaStartTcp[i] + kPandaGoalHalfRange);
  }
}

// The finger actuator's target for a clipped command: -1 closed, +1 open.
double panda_finger_ctrl(double command) { return kPandaFingerMax * 0.5 * (command + 1.0); }

// The Cartesian command: the TCP moved by up to kPandaMaxTcpStep per clipped command, inside the workspace.
void panda_tcp_target(const mjData* data, const PandaIndex& index, const double command[3], double target[3]) {
  const mjtNum* tcp = data->site_xpos + 3 * index.tcp;
  for (int i = 0; i < 3; ++i) {
    target[i] = clip(tcp[i] + kPandaMaxTcpStep * command[i], kPandaWorkspaceLow[i], kPandaWorkspaceHigh[i]);
  }
}

void panda_apply_action(const mjModel* model, mjData* data, const std::vector<float>& action) {
  const PandaIndex& index = cached_panda_index(model);
  double command[4];
  for (int i = 0; i < 4; ++i) command[i] = clip(static_cast<double>(action[i]), -1.0, 1.0);
  double target[3];
  panda_tcp_target(data, index, command, target);
  double arm[7];
  panda_ik(model, data, index, target, arm);
  for (int j = 0; j < 7; ++j) data->ctrl[j] = arm[j];
  data->ctrl[7] = panda_finger_ctrl(command[3]);
}

// panda.PandaEnv.step with control "joint": each arm joint's target moves by up to kPandaMaxJointStep from where
// the joint is, inside its limits; the fingers as in Cartesian control.
void panda_apply_joint_action(const mjModel* model, mjData* data, const std::vector<float>& action) {
  const PandaIndex& index = cached_panda_index(model);
  for (int j = 0; j < 7; ++j) {
    double command = clip(static_cast<double>(action[j]), -1.0, 1.0);
    data->ctrl[j] = clip(data->qpos[index.qadr[j]] + kPandaMaxJointStep * command, index.low[j], index.high[j]);
  }
  data->ctrl[7] = panda_finger_ctrl(clip(static_cast<double>(action[7]), -1.0, 1.0));
}

// The cube tasks: the cube on the table and a goal at least kPandaMinGoalDistance away from it in (x, y);
// panda-pick lifts half the goals up to kPandaPickGoalTop.
void panda_cube_reset(mjModel* model, mjData* data, std::mt19937_64& rng, bool goals_in_air) {
  panda_reach_reset(model, data, rng);
  int cube = model->jnt_qposadr[named_id(model, mjOBJ_JOINT, "cube")];
  double xy[2];
  for (int i = 0; i < 2; ++i) xy[i] = uniform(rng, kPandaTableLow[i], kPandaTableHigh[i]);
  const double start[7] = {xy[0], xy[1], kPandaCubeHalf, 1.0, 0.0, 0.0, 0.0};
  mju_copy(data->qpos + cube, start, 7);
  double goal[3] = {0.0, 0.0, kPandaCubeHalf};
  for (int attempt = 0; attempt < 100; ++attempt) {
    for (int i = 0; i < 2; ++i) goal[i] = uniform(rng, kPandaTableLow[i], kPandaTableHigh[i]);
    if (std::hypot(goal[0] - xy[0], goal[1] - xy[1]) >= kPandaMinGoalDistance) break;
  }
  if (goals_in_air && uniform(rng, 0.0, 1.0) < 0.5) goal[2] = uniform(rng, kPandaCubeHalf, kPandaPickGoalTop);
  mju_copy(model->site_pos + 3 * named_id(model, mjOBJ_SITE, "goal"), goal, 3);
}

void panda_push_reset(mjModel* model, mjData* data, std::mt19937_64& rng) {
  panda_cube_reset(model, data, rng, false);
}

void panda_pick_reset(mjModel* model, mjData* data, std::mt19937_64& rng) {
  panda_cube_reset(model, data, rng, true);
}

// observation (tcp position, tcp velocity, finger width and its rate, 7 joint angles; with a cube also its
// position, position minus the tcp's, quaternion and 6 velocities) | achieved goal (tcp or cube) | desired goal
std::vector<double> panda_observe(const mjModel* model, const mjData* data) {
  const PandaIndex& index = cached_panda_index(model);
  const mjtNum* tcp = data->site_xpos + 3 * index.tcp;
  mjtNum velocity[6];
  mj_objectVelocity(model, data, mjOBJ_SITE, index.tcp, velocity, 0);
  std::vector<double> obs(tcp, tcp + 3);
  obs.insert(obs.end(), velocity + 3, velocity + 6);
  obs.push_back(2 * data->qpos[index.finger_qpos]);
  obs.push_back(2 * data->qvel[index.finger_dof]);
  for (int j = 0; j < 7; ++j) obs.push_back(data->qpos[index.qadr[j]]);
  const mjtNum* achieved = tcp;
  int cube_joint = mj_name2id(model, mjOBJ_JOINT, "cube");
  if (cube_joint >= 0) {
    const mjtNum* cube = data->qpos + model->jnt_qposadr[cube_joint];
    const mjtNum* cube_velocity = data->qvel + model->jnt_dofadr[cube_joint];
    obs.insert(obs.end(), cube, cube + 3);
    for (int i = 0; i < 3; ++i) obs.push_back(cube[i] - tcp[i]);
    obs.insert(obs.end(), cube + 3, cube + 7);
    obs.insert(obs.end(), cube_velocity, cube_velocity + 6);
    achieved = cube;
  }
  obs.insert(obs.end(), achieved, achieved + 3);
  obs.insert(obs.end(), model->site_pos + 3 * index.goal, model->site_pos + 3 * index.goal + 3);
  return obs;
}

// The distance from the achieved goal (the last-but-one 3 entries) to the desired one (the last 3), as numpy's
// norm sums the squares.
double goal_distance(const std::vector<double>& obs) {
  size_t a = obs.size() - 6, d = obs.size() - 3;
  double dx = obs[a] - obs[d], dy = obs[a + 1] - obs[d + 1], dz = obs[a + 2] - obs[d + 2];
  return std::sqrt(dx * dx + dy * dy + dz * dz);
}

// Sparse: -1 until the achieved goal is within the threshold of the desired one, then 0.
StepOutcome sparse_goal_score(const StepContext& step, double threshold) {
  bool reached = goal_distance(step.observation) < threshold;
  return {reached ? 0.0 : -1.0, false, reached};
}

// Dense: minus the distance in metres.
StepOutcome dense_goal_score(const StepContext& step, double threshold) {
  double distance = goal_distance(step.observation);
  return {-distance, false, distance < threshold};
}

StepOutcome panda_reach_score(const mjModel*, mjData*, const StepContext& step) {
  return sparse_goal_score(step, kPandaReachThreshold);
}

StepOutcome panda_cube_score(const mjModel*, mjData*, const StepContext& step) {
  return sparse_goal_score(step, kPandaCubeThreshold);
}

StepOutcome panda_reach_dense_score(const mjModel*, mjData*, const StepContext& step) {
  return dense_goal_score(step, kPandaReachThreshold);
}

StepOutcome panda_cube_dense_score(const mjModel*, mjData*, const StepContext& step) {
  return dense_goal_score(step, kPandaCubeThreshold);
}


// robotrl/envs/panda_grasp.py: panda-grasp from state observations, QT-Opt's grasping task on the Panda.
constexpr int kGraspShapes = 5;  // box, cylinder, sphere, capsule, ellipsoid (robotrl/envs/grasp.py SHAPES)
const char* const kGraspShapeGeoms[kGraspShapes] = {"obj_box", "obj_cylinder", "obj_sphere", "obj_capsule",
                                                    "obj_ellipsoid"};
// grasp.SIZE_RANGES (training objects)
constexpr double kGraspSizeLow[kGraspShapes][3] = {
    {0.015, 0.015, 0.015}, {0.015, 0.015, 0.0}, {0.018, 0.0, 0.0}, {0.015, 0.01, 0.0}, {0.015, 0.015, 0.015}};
constexpr double kGraspSizeHigh[kGraspShapes][3] = {
    {0.03, 0.03, 0.03}, {0.03, 0.035, 0.0}, {0.03, 0.0, 0.0}, {0.025, 0.025, 0.0}, {0.03, 0.03, 0.025}};
constexpr int kGraspRestEntry[kGraspShapes] = {2, 1, 0, 0, 2};  // grasp.rest_height: which size entry
constexpr double kGraspBinCentre[2] = {0.5, 0.0};
constexpr double kGraspObjectRange = 0.1;
constexpr double kGraspMaxYaw = 0.3;
constexpr double kGraspYawLimit = 1.5707963267948966;  // math.pi / 2
constexpr double kGraspLiftHeight = 0.1;
constexpr double kGraspTerminateAbove = 0.5;
constexpr double kGraspStepPenalty = -0.05;
constexpr double kGraspSuccessReward = 1.0;
constexpr double kGraspLiftSeconds = 1.0;
constexpr double kGraspCloseSeconds = 0.3;
constexpr double kGraspMaxSetpointLead = 0.1;  // panda_grasp.MAX_SETPOINT_LEAD

// The commanded pose the actions move (panda_grasp's setpoint and yaw target; the lift test holds the hand at the
// yaw target). One episode at a time: grasp_apply_object starts an episode, its first observation takes the TCP.
double g_grasp_yaw_target = 0.0;
double g_grasp_setpoint[3] = {0.0, 0.0, 0.0};
bool g_grasp_setpoint_set = false;

int grasp_active_shape(const mjModel* model) {
  for (int i = 0; i < kGraspShapes; ++i) {
    if (model->geom_contype[named_id(model, mjOBJ_GEOM, kGraspShapeGeoms[i])] != 0) return i;
  }
  throw RuntimeError("panda-grasp: no object shape is enabled in the model");
}

// grasp._inertia: principal moments of a solid primitive, in the same operation order.
void grasp_inertia(int shape, const double size[3], double mass, double out[3]) {
  if (shape == 0 || shape == 4) {  // box, ellipsoid
    double a = size[0], b = size[1], c = size[2], scale = shape == 0 ? mass / 3.0 : mass / 5.0;
    out[0] = scale * (b * b + c * c);
    out[1] = scale * (a * a + c * c);
    out[2] = scale * (a * a + b * b);
  } else if (shape == 2) {  // sphere
    out[0] = out[1] = out[2] = 0.4 * mass * (size[0] * size[0]);
  } else {  // cylinder, capsule (as a cylinder of its full length)
    double r = size[0], h = size[1] + (shape == 3 ? size[0] : 0.0);
    double side = mass * (3 * r * r + 4 * h * h) / 12.0;
    out[0] = out[1] = side;
    out[2] = 0.5 * mass * r * r;
  }
}

// grasp.apply_object: [shape, size x3, mass, friction] made the live geom of body "object".
void grasp_apply_object(mjModel* model, mjData* data, const std::vector<double>& object) {
  int shape = static_cast<int>(object[0]);
  if (shape < 0 || shape >= kGraspShapes || object[0] != shape) {
    throw RuntimeError("panda-grasp: object shape " + std::to_string(object[0]) + " is not 0, 1, 2, 3 or 4");
  }
  int body = named_id(model, mjOBJ_BODY, "object");
  for (int i = 0; i < kGraspShapes; ++i) {
    int geom = named_id(model, mjOBJ_GEOM, kGraspShapeGeoms[i]);
    model->geom_contype[geom] = model->geom_conaffinity[geom] = i == shape ? 1 : 0;
  }
  int geom = named_id(model, mjOBJ_GEOM, kGraspShapeGeoms[shape]);
  for (int i = 0; i < 3; ++i) model->geom_size[3 * geom + i] = object[1 + i];
  model->geom_friction[3 * geom] = object[5];
  model->body_mass[body] = object[4];
  grasp_inertia(shape, object.data() + 1, object[4], model->body_inertia + 3 * body);
  for (int i = 0; i < 3; ++i) model->body_ipos[3 * body + i] = 0.0;
  model->body_iquat[4 * body] = 1.0;
  for (int i = 1; i < 4; ++i) model->body_iquat[4 * body + i] = 0.0;
  mj_setConst(model, data);
  g_grasp_yaw_target = 0.0;  // a new episode (PandaGraspEnv.reset_model)
  g_grasp_setpoint_set = false;
}

// PandaGraspEnv.reset_model with the runtime's RNG: a training object, resting in the bin with a random yaw.
void panda_grasp_reset(mjModel* model, mjData* data, std::mt19937_64& rng) {
  int shape = std::uniform_int_distribution<int>(0, kGraspShapes - 1)(rng);
  std::vector<double> object = {static_cast<double>(shape), 0.0, 0.0, 0.0, 0.0, 0.0};
  for (int i = 0; i < 3; ++i) {
    if (kGraspSizeHigh[shape][i] > 0) object[1 + i] = uniform(rng, kGraspSizeLow[shape][i], kGraspSizeHigh[shape][i]);
  }
  object[4] = uniform(rng, 0.05, 0.25);
  object[5] = uniform(rng, 0.5, 1.2);
  grasp_apply_object(model, data, object);
  int home = named_id(model, mjOBJ_KEY, "home");
  mju_copy(data->qpos, model->key_qpos + home * model->nq, model->nq);
  mju_copy(data->ctrl, model->key_ctrl + home * model->nu, model->nu);
  int adr = model->jnt_qposadr[named_id(model, mjOBJ_JOINT, "object")];
  for (int i = 0; i < 2; ++i) {
    data->qpos[adr + i] = kGraspBinCentre[i] + uniform(rng, -kGraspObjectRange, kGraspObjectRange);
  }
  data->qpos[adr + 2] = object[1 + kGraspRestEntry[shape]];
  double yaw = uniform(rng, -M_PI, M_PI);
  mjtNum turn[4] = {std::cos(yaw / 2), 0.0, 0.0, std::sin(yaw / 2)};
  mjtNum lying[4] = {std::cos(M_PI / 4), 0.0, std::sin(M_PI / 4), 0.0}, upright[4] = {1.0, 0.0, 0.0, 0.0};
  mju_mulQuat(data->qpos + adr + 3, turn, shape == 3 ? lying : upright);
}

double grasp_hand_yaw(const mjData* data, const PandaIndex& index) {
  const mjtNum* rot = data->site_xmat + 9 * index.tcp;  // the closing direction: the TCP frame's y axis
  return std::atan2(rot[4], rot[1]);
}

// The ctrl of panda_grasp._control: IK for the TCP at `target` with the hand down at the yaw target (the rotation
// of panda_grasp.tcp_rotation), the finger servo's command at `finger` (the exported scene's actuator maps 0,
// closed, to a target FINGER_SQUEEZE past closed, as in Python).
void grasp_set_ctrl(const mjModel* model, mjData* data, const PandaIndex& index, const double target[3],
                    double finger) {
  double c = std::cos(g_grasp_yaw_target), s = std::sin(g_grasp_yaw_target);
  const double rotation[3][3] = {{-s, c, 0.0}, {c, s, 0.0}, {0.0, 0.0, -1.0}};
  double arm[7];
  panda_ik(model, data, index, target, arm, rotation);
  for (int j = 0; j < 7; ++j) data->ctrl[j] = arm[j];
  data->ctrl[7] = finger;
}

// panda_grasp._control within the lift test: the ctrl, then the control step's physics.
void grasp_control(const mjModel* model, mjData* data, const PandaIndex& index, const double target[3],
                   double finger, int frame_skip) {
  grasp_set_ctrl(model, data, index, target, finger);
  for (int i = 0; i < frame_skip; ++i) mj_step(model, data);
  mj_forward(model, data);
}

void panda_grasp_apply_action(const mjModel* model, mjData* data, const std::vector<float>& action) {
  const PandaIndex& index = cached_panda_index(model);
  double a[6];
  for (int i = 0; i < 6; ++i) a[i] = clip(static_cast<double>(action[i]), -1.0, 1.0);
  const mjtNum* tcp = data->site_xpos + 3 * index.tcp;
  for (int i = 0; i < 3; ++i) {  // the setpoint moves, within the lead bound of the hand and the workspace
    double lead = clip(g_grasp_setpoint[i] + kPandaMaxTcpStep * a[i], tcp[i] - kGraspMaxSetpointLead,
                       tcp[i] + kGraspMaxSetpointLead);
    g_grasp_setpoint[i] = clip(lead, kPandaWorkspaceLow[i], kPandaWorkspaceHigh[i]);
  }
  g_grasp_yaw_target = clip(g_grasp_yaw_target + kGraspMaxYaw * a[3], -kGraspYawLimit, kGraspYawLimit);
  grasp_set_ctrl(model, data, index, g_grasp_setpoint, kPandaFingerMax * 0.5 * (1.0 - a[4]));  // -1 open, +1 closed
}

// grasp's layout: TCP, yaw sin/cos, finger width, object - TCP, object quaternion (w >= 0), size, shape one-hot,
// setpoint - TCP, yaw target - yaw, and the time left (written by the runtime).
std::vector<double> panda_grasp_observe(const mjModel* model, const mjData* data) {
  const PandaIndex& index = cached_panda_index(model);
  const mjtNum* tcp = data->site_xpos + 3 * index.tcp;
  double yaw = grasp_hand_yaw(data, index);
  std::vector<double> obs(tcp, tcp + 3);
  obs.push_back(std::sin(yaw));
  obs.push_back(std::cos(yaw));
  obs.push_back(2 * data->qpos[index.finger_qpos]);
  const mjtNum* object = data->qpos + model->jnt_qposadr[named_id(model, mjOBJ_JOINT, "object")];
  for (int i = 0; i < 3; ++i) obs.push_back(object[i] - tcp[i]);
  double sign = object[3] < 0 ? -1.0 : 1.0;
  for (int i = 3; i < 7; ++i) obs.push_back(sign < 0 ? -object[i] : object[i]);
  int shape = grasp_active_shape(model);
  const mjtNum* size = model->geom_size + 3 * named_id(model, mjOBJ_GEOM, kGraspShapeGeoms[shape]);
  obs.insert(obs.end(), size, size + 3);
  for (int i = 0; i < kGraspShapes; ++i) obs.push_back(i == shape ? 1.0 : 0.0);
  if (!g_grasp_setpoint_set) {  // the episode's first observation: the setpoint starts at the hand
    mju_copy3(g_grasp_setpoint, tcp);
    g_grasp_setpoint_set = true;
  }
  for (int i = 0; i < 3; ++i) obs.push_back(g_grasp_setpoint[i] - tcp[i]);
  obs.push_back(g_grasp_yaw_target - yaw);
  obs.push_back(0.0);
  return obs;
}

// PandaGraspEnv(object_size="hidden"): the same observation with the object's size entries (13..15) at 0.
std::vector<double> panda_grasp_observe_hidden_size(const mjModel* model, const mjData* data) {
  std::vector<double> obs = panda_grasp_observe(model, data);
  for (int i = 13; i < 16; ++i) obs[i] = 0.0;
  return obs;
}

// PandaGraspEnv._lift_test: close in place, raise the hand, hold; the object's lowest point LIFT_HEIGHT above the
// table and touching both finger pads.
bool grasp_lift_test(const mjModel* model, mjData* data, int frame_skip) {
  const PandaIndex& index = cached_panda_index(model);
  const double dt = model->opt.timestep * frame_skip;
  double hold[3];
  mju_copy3(hold, data->site_xpos + 3 * index.tcp);
  for (long i = 0; i < std::lround(kGraspCloseSeconds / dt); ++i) {
    grasp_control(model, data, index, hold, 0.0, frame_skip);
  }
  double top = std::min(hold[2] + kGraspLiftHeight + 0.1, kPandaWorkspaceHigh[2]);
  for (long i = 0; i < std::lround(kGraspLiftSeconds / dt); ++i) {
    double target[3] = {hold[0], hold[1], std::min(data->site_xpos[3 * index.tcp + 2] + kPandaMaxTcpStep, top)};
    grasp_control(model, data, index, target, 0.0, frame_skip);
  }
  int shape = grasp_active_shape(model);
  int geom = named_id(model, mjOBJ_GEOM, kGraspShapeGeoms[shape]);
  double bottom = data->qpos[model->jnt_qposadr[named_id(model, mjOBJ_JOINT, "object")] + 2] -
                  model->geom_size[3 * geom + kGraspRestEntry[shape]];
  int pads[2] = {named_id(model, mjOBJ_GEOM, "panda/left_finger_pad"),
                 named_id(model, mjOBJ_GEOM, "panda/right_finger_pad")};
  bool touching[2] = {false, false};
  for (int c = 0; c < data->ncon; ++c) {
    int g1 = data->contact[c].geom[0], g2 = data->contact[c].geom[1];
    if (g1 != geom && g2 != geom) continue;
    for (int p = 0; p < 2; ++p) touching[p] = touching[p] || g1 == pads[p] || g2 == pads[p];
  }
  return bottom >= kGraspLiftHeight && touching[0] && touching[1];
}

StepOutcome panda_grasp_score(const mjModel* model, mjData* data, const StepContext& step) {
  bool terminated = clip(static_cast<double>(step.action[5]), -1.0, 1.0) > kGraspTerminateAbove ||
                    step.step >= step.horizon;
  int frame_skip = static_cast<int>(std::lround(step.dt / model->opt.timestep));
  bool success = terminated && grasp_lift_test(model, data, frame_skip);
  return {kGraspStepPenalty + (success ? kGraspSuccessReward : 0.0), terminated, success};
}

}  // namespace

const std::vector<Task>& all_tasks() {
  static const std::vector<Task> tasks = {
      {"pendulum", "InvertedPendulum-v5", "inverted_pendulum.xml", 2, 1000, 4,
       pendulum_reset, pendulum_observe, pendulum_score},
      {"reach", "Reacher-v5", "reacher.xml", 2, 50, 10, reach_reset, reach_observe, reach_score},
      {"cheetah", "HalfCheetah-v5", "half_cheetah.xml", 5, 1000, 17, cheetah_reset, cheetah_observe,
       cheetah_score},
      {"panda-reach", "RobotrlPandaReach-v0", "", 8, 50, 21, panda_reach_reset, panda_observe, panda_reach_score,
       4, panda_apply_action, true, 3},
      {"panda-push", "RobotrlPandaPush-v0", "", 8, 50, 37, panda_push_reset, panda_observe, panda_cube_score,
       4, panda_apply_action, true, 3},
      {"panda-pick", "RobotrlPandaPick-v0", "", 8, 50, 37, panda_pick_reset, panda_observe, panda_cube_score,
       4, panda_apply_action, true, 3},
      {"panda-grasp", "RobotrlPandaGrasp-v0", "", 20, 20, 26, panda_grasp_reset, panda_grasp_observe,
       panda_grasp_score, 6, panda_grasp_apply_action, true, 0, 6, grasp_apply_object, true},
  };
  return tasks;
}

Task configured_task(const Task& task, const std::string& control_mode, const std::string& reward_type,
                     bool object_size_hidden) {
  const bool panda = task.apply_action == panda_apply_action;
  const bool grasp = task.apply_action == panda_grasp_apply_action;
  Task configured = task;
  if (object_size_hidden && !grasp) {
    throw RuntimeError("task '" + task.name + "' has no hidden object size in this runtime; only panda-grasp does");
  }
  if (object_size_hidden) configured.observe = panda_grasp_observe_hidden_size;
  if (panda && control_mode == "joint") {
    configured.action_width = 8;  // 7 joint deltas and the fingers
    configured.apply_action = panda_apply_joint_action;
  } else if (grasp && control_mode != "ee_yaw" && control_mode != "default") {
    throw RuntimeError("task '" + task.name + "' has no control mode '" + control_mode + "' in this runtime; " +
                       "it runs ee_yaw");
  } else if (!(control_mode == "default" || (panda && control_mode == "ee") || grasp)) {
    throw RuntimeError("task '" + task.name + "' has no control mode '" + control_mode + "' in this runtime; " +
                       (panda ? "it runs ee, joint" : "it sets the actuators' ctrl to the action"));
  }
  if (panda && reward_type == "dense") {
    configured.score = task.score == panda_reach_score ? panda_reach_dense_score : panda_cube_dense_score;
  } else if (!(reward_type == "default" || (panda && reward_type == "sparse"))) {
    throw RuntimeError("task '" + task.name + "' has no reward type '" + reward_type + "' in this runtime; " +
                       (panda ? "it scores sparse, dense" : "it scores the gymnasium env's reward"));
  }
  return configured;
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
