"""`grasp`: a parallel-jaw gripper on a Cartesian mount picks one object per episode off a table.

The task of QT-Opt (Kalashnikov et al. 2018, arXiv 1806.10293, section 4), state-based: each episode draws
one of five primitive shapes with random size, mass, friction, position and yaw. The agent moves the
gripper by Cartesian displacements and yaw rotations, sets the finger opening and may terminate; at
termination or at the horizon a lift test closes the fingers, raises the gripper and checks that the
object is off the table and held between both fingers.

Actions (all in [-1, 1]): dx, dy, dz (x MAX_MOVE metres), dyaw (x MAX_YAW radians), fingers (-1 open,
+1 closed), terminate (> 0.5 ends the episode with the lift test).
Reward: +1 for a successful lift test, -0.05 per step; info holds both terms and `is_success`.
The horizon is the one given to gymnasium.make (the task card's `horizon`), and the observation ends with the
fraction of it that remains, so the forced lift test at the last step is part of a Markov state.
"""

from __future__ import annotations

import math
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco import MujocoEnv

from robotrl.config import RobotrlError
from robotrl.resources import data_dir

SHAPES = ("box", "cylinder", "sphere", "capsule", "ellipsoid")
MAX_MOVE = 0.04
MAX_YAW = 0.3
TERMINATE_ABOVE = 0.5
STEP_PENALTY = -0.05
SUCCESS_REWARD = 1.0
LIFT_HEIGHT = 0.1
HOME = np.array([0.0, 0.0, 0.2])
OBJECT_RANGE = 0.08
FINGER_OPEN, FINGER_CLOSED = -0.06, 0.0
OBS_DIM = 22


class GraspEnv(MujocoEnv):
    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"], "render_fps": 10}

    def __init__(self, max_steps: int | None = None, frame_skip: int = 50, lift_seconds: float = 1.0,
                 **kwargs: Any):
        """max_steps: the horizon; robotrl.make_env passes the task card's (envs.HORIZON_KWARGS)."""
        self._max_steps, self.lift_seconds = max_steps, lift_seconds
        # every entry is unbounded but the last, the fraction of the horizon left (its range is known: [0, 1])
        low, high = np.full(OBS_DIM, -np.inf), np.full(OBS_DIM, np.inf)
        low[-1], high[-1] = 0.0, 1.0
        obs_space = spaces.Box(low, high, dtype=np.float64)
        kwargs.setdefault("camera_name", "front")
        super().__init__(str(data_dir("assets") / "grasp.xml"), frame_skip, obs_space, **kwargs)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(6,), dtype=np.float32)
        m = self.model
        self._jnt = {n: m.joint(n).qposadr[0] for n in ("slide_x", "slide_y", "slide_z", "yaw", "finger_left",
                                                        "finger_right", "object")}
        self._shape_geoms = [m.geom(f"obj_{s}").id for s in SHAPES]
        self._finger_geoms = {m.geom("finger_left").id, m.geom("finger_right").id}
        self._object_body = m.body("object").id
        self._object_rgba = m.geom_rgba[self._shape_geoms[0]].copy()
        self._ctrl_low, self._ctrl_high = m.actuator_ctrlrange[:, 0].copy(), m.actuator_ctrlrange[:, 1].copy()
        self.shape = 0
        self.steps = 0
        self.target = np.zeros(m.nu)

    @property
    def max_steps(self) -> int:
        """Steps per episode: the last one runs the lift test (a termination, not a time-limit truncation)."""
        if self._max_steps is None:
            raise RobotrlError("GraspEnv needs a horizon: robotrl.make_env('grasp') (the card's), or "
                               "gymnasium.make('RobotrlGrasp-v0', max_steps=N, max_episode_steps=N)")
        return int(self._max_steps)

    # ------------------------------------------------------------------ episode set-up
    def _randomize_object(self) -> tuple[np.ndarray, float]:
        """Pick a shape and its size, mass, friction; returns (object quaternion before yaw, rest height)."""
        self.shape, size, mass, friction, quat, rest = draw_object(self.np_random)
        self._apply_object(self.shape, size, mass, friction)
        return quat, rest

    def _apply_object(self, shape_index: int, size: np.ndarray, mass: float, friction: float) -> None:
        self.shape = shape_index
        apply_object(self.model, self.data, self._shape_geoms, self._object_body, self._object_rgba, shape_index,
                     size, mass, friction)

    def reset_model(self) -> np.ndarray:
        rng = self.np_random
        quat, rest = self._randomize_object()
        qpos, qvel = self.init_qpos.copy(), np.zeros(self.model.nv)
        j = self._jnt
        qpos[j["slide_x"]], qpos[j["slide_y"]], qpos[j["slide_z"]] = HOME
        qpos[j["yaw"]] = 0.0
        qpos[j["finger_left"]], qpos[j["finger_right"]] = FINGER_OPEN, -FINGER_OPEN
        yaw = rng.uniform(-math.pi, math.pi)
        o = j["object"]
        qpos[o:o + 3] = [*rng.uniform(-OBJECT_RANGE, OBJECT_RANGE, 2), rest + 0.002]
        yaw_quat = np.array([math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)])
        mujoco.mju_mulQuat(qpos[o + 3:o + 7], yaw_quat, quat)
        self.set_state(qpos, qvel)
        self.target = np.array([*HOME, 0.0, FINGER_OPEN])
        self.data.ctrl[:] = self.target
        mujoco.mj_step(self.model, self.data, nstep=50)  # let the object settle on the table
        self.steps = 0
        return self._get_obs()

    def task_state(self) -> dict[str, Any]:
        """The episode's state beyond MuJoCo's integration state: the drawn object (it edits the model), the
        step counter and the actuator targets. For exact checkpoints (robotrl.envs.get_env_state)."""
        g = self._shape_geoms[self.shape]
        b = self._object_body
        return {"shape": self.shape, "steps": self.steps, "target": self.target.tolist(),
                "size": self.model.geom_size[g].tolist(), "friction": float(self.model.geom_friction[g, 0]),
                "mass": float(self.model.body_mass[b])}

    def set_task_state(self, state: dict[str, Any]) -> None:
        self._apply_object(int(state["shape"]), np.asarray(state["size"]), state["mass"], state["friction"])
        self.steps, self.target = int(state["steps"]), np.asarray(state["target"], dtype=np.float64)

    def scripted_policy(self) -> ScriptedGrasp:
        return ScriptedGrasp()

    # ------------------------------------------------------------------ stepping
    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self.target[:3] += MAX_MOVE * a[:3]
        self.target[3] += MAX_YAW * a[3]
        self.target[4] = FINGER_OPEN + (a[4] + 1.0) / 2.0 * (FINGER_CLOSED - FINGER_OPEN)
        self.target = np.clip(self.target, self._ctrl_low, self._ctrl_high)
        self.do_simulation(self.target, self.frame_skip)
        self.steps += 1
        terminated = bool(a[5] > TERMINATE_ABOVE) or self.steps >= self.max_steps
        success = self._lift_test() if terminated else False
        info = {"reward_step": STEP_PENALTY, "reward_grasp": SUCCESS_REWARD if success else 0.0,
                "is_success": success, "shape": SHAPES[self.shape]}
        reward = info["reward_step"] + info["reward_grasp"]
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), reward, terminated, False, info

    def _lift_test(self) -> bool:
        """Close the fingers, raise the gripper LIFT_HEIGHT + 0.1 m, hold; success when the object is at least
        LIFT_HEIGHT above the table and touches both fingers."""
        self.target[4] = FINGER_CLOSED
        self.do_simulation(self.target, int(0.3 / self.model.opt.timestep))
        self.target[2] = min(self.target[2] + LIFT_HEIGHT + 0.1, self._ctrl_high[2])
        self.do_simulation(self.target, int(self.lift_seconds / self.model.opt.timestep))
        lifted = self.data.xpos[self._object_body][2] - self._rest_bottom_offset() >= LIFT_HEIGHT
        return bool(lifted and self._touching_fingers() == self._finger_geoms)

    def _rest_bottom_offset(self) -> float:
        """Height of the object's centre above its lowest point when resting (table top is z = 0)."""
        return rest_height(SHAPES[self.shape], self.model.geom_size[self._shape_geoms[self.shape]])

    def _touching_fingers(self) -> set[int]:
        return touching(self.data, self._shape_geoms[self.shape], self._finger_geoms)

    # ------------------------------------------------------------------ observation
    def grip_point(self) -> np.ndarray:
        return self.data.site("grip").xpos.copy()

    def _get_obs(self) -> np.ndarray:
        d, j = self.data, self._jnt
        pos = np.array([d.qpos[j["slide_x"]], d.qpos[j["slide_y"]], d.qpos[j["slide_z"]]])
        yaw = d.qpos[j["yaw"]]
        opening = d.qpos[j["finger_right"]] - d.qpos[j["finger_left"]]
        o = j["object"]
        quat = d.qpos[o + 3:o + 7].copy()
        if quat[0] < 0:  # q and -q are the same rotation: keep the one with w >= 0
            quat = -quat
        one_hot = np.zeros(len(SHAPES))
        one_hot[self.shape] = 1.0
        size = self.model.geom_size[self._shape_geoms[self.shape]]
        remaining = (self.max_steps - self.steps) / self.max_steps
        return np.concatenate([pos, [math.sin(yaw), math.cos(yaw), opening], d.qpos[o:o + 3] - self.grip_point(),
                               quat, size, one_hot, [remaining]])


# Each shape's MuJoCo size ranges (half-extents / radius, half-length; metres) for training objects
SIZE_RANGES = {"box": ([0.015, 0.015, 0.015], [0.03, 0.03, 0.03]),
               "cylinder": ([0.015, 0.015, 0.0], [0.03, 0.035, 0.0]),
               "sphere": ([0.018, 0.0, 0.0], [0.03, 0.0, 0.0]),
               "capsule": ([0.015, 0.01, 0.0], [0.025, 0.025, 0.0]),
               "ellipsoid": ([0.015, 0.015, 0.015], [0.03, 0.03, 0.025])}
# The held-out object set: every size entry outside its training range, all smaller (down to this fraction of the
# range's low end) or all larger (up to this multiple of its high end); never drawn in training
HELD_OUT_SMALL, HELD_OUT_LARGE = 0.7, 1.15
LYING = np.array([math.cos(math.pi / 4), 0, math.sin(math.pi / 4), 0])  # a capsule on its side, axis along x
UPRIGHT = np.array([1.0, 0, 0, 0])


def draw_object(rng: np.random.Generator, held_out: bool = False) -> tuple[int, np.ndarray, float, float,
                                                                              np.ndarray, float]:
    """One episode's object: (shape index, size, mass, friction, quaternion before the yaw, rest height)."""
    shape = int(rng.integers(len(SHAPES)))
    name = SHAPES[shape]
    low, high = (np.array(b) for b in SIZE_RANGES[name])
    if held_out:
        if rng.uniform() < 0.5:
            low, high = HELD_OUT_SMALL * low, low
        else:
            low, high = high, HELD_OUT_LARGE * high
    size = np.zeros(3)
    for i in np.flatnonzero(high > 0):  # unused size entries stay 0
        size[i] = rng.uniform(low[i], high[i])
    quat = LYING if name == "capsule" else UPRIGHT
    return shape, size, float(rng.uniform(0.05, 0.25)), float(rng.uniform(0.5, 1.2)), quat, rest_height(name, size)


def rest_height(shape: str, size: np.ndarray) -> float:
    """Height of a resting object's centre above its lowest point."""
    return float({"box": size[2], "cylinder": size[1], "sphere": size[0], "capsule": size[0],
                  "ellipsoid": size[2]}[shape])


def apply_object(model: mujoco.MjModel, data: mujoco.MjData, shape_geoms: list[int], body: int,
                 rgba: np.ndarray, shape_index: int, size: np.ndarray, mass: float, friction: float) -> None:
    """Make one of the object body's shape geoms the live one (the others neither collide nor show)."""
    for i, g in enumerate(shape_geoms):
        active = i == shape_index
        model.geom_contype[g] = model.geom_conaffinity[g] = int(active)
        model.geom_rgba[g] = rgba if active else 0.0
    g = shape_geoms[shape_index]
    model.geom_size[g] = size
    model.geom_friction[g, 0] = friction
    model.body_mass[body] = mass
    model.body_inertia[body] = _inertia(SHAPES[shape_index], size, mass)
    model.body_ipos[body], model.body_iquat[body] = 0.0, [1.0, 0, 0, 0]
    mujoco.mj_setConst(model, data)


def touching(data: mujoco.MjData, geom: int, candidates: set[int]) -> set[int]:
    """Which of the `candidates` geoms are in contact with `geom` (the lift tests' fingers or pads)."""
    found: set[int] = set()
    for c in data.contact[: data.ncon]:
        pair = {int(c.geom1), int(c.geom2)}
        if geom in pair:
            found |= pair & candidates
    return found


def _inertia(shape: str, size: np.ndarray, mass: float) -> np.ndarray:
    """Principal moments of a solid primitive of the given MuJoCo size (half-extents / radius)."""
    if shape == "box":
        a, b, c = size
        return mass / 3.0 * np.array([b * b + c * c, a * a + c * c, a * a + b * b])
    if shape == "sphere":
        return np.full(3, 0.4 * mass * size[0] ** 2)
    if shape in ("cylinder", "capsule"):  # capsule approximated by a cylinder of its full length
        r, h = size[0], size[1] + (size[0] if shape == "capsule" else 0.0)
        side = mass * (3 * r * r + 4 * h * h) / 12.0
        return np.array([side, side, 0.5 * mass * r * r])
    a, b, c = size
    return mass / 5.0 * np.array([b * b + c * c, a * a + c * c, a * a + b * b])


ALIGNED = 0.008  # metres between the grip point and the object, horizontally, for the scripted grasp to close
GRASP_MOUNT_Z = 0.086  # fingertips 6 mm above the table: the pads then span every object's lower part


class ScriptedGrasp:
    """The scripted grasp as a stateful policy (raw observation -> action in [-1, 1]); reset() per episode.
    max_move / max_yaw: the task's displacement per step at action 1; grasp_z: the height (observation entry 2)
    at which the fingers close, or with at_object_centre the lowest such height, the fingers closing at the
    object's centre above it; descend_within: see scripted_action."""

    def __init__(self, max_move: float = MAX_MOVE, max_yaw: float = MAX_YAW, grasp_z: float = GRASP_MOUNT_Z,
                 at_object_centre: bool = False, descend_within: float = ALIGNED) -> None:
        self.phase: dict[str, int] = {}
        self.max_move, self.max_yaw, self.grasp_z = max_move, max_yaw, grasp_z
        self.at_object_centre, self.descend_within = at_object_centre, descend_within

    def reset(self) -> None:
        self.phase = {}

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        grasp_z = max(self.grasp_z, obs[2] + obs[8]) if self.at_object_centre else self.grasp_z
        return scripted_action(obs, self.phase, self.max_move, self.max_yaw, grasp_z, self.descend_within)

    def state_dict(self) -> dict[str, int]:
        return dict(self.phase)

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.phase = dict(state)


def scripted_action(obs: np.ndarray, phase: dict[str, int], max_move: float = MAX_MOVE, max_yaw: float = MAX_YAW,
                    grasp_z: float = GRASP_MOUNT_Z, descend_within: float = ALIGNED) -> np.ndarray:
    """One step of the scripted grasp: align above the object (position and jaw direction), descend (once within
    `descend_within` of it horizontally, still aligning), close, terminate (the lift test lifts). `phase` carries
    the closing counter across the episode's steps."""
    action = np.zeros(6)
    if phase.get("closing", 0) > 0:  # keep the fingers closed a step, then terminate into the lift test
        phase["closing"] += 1
        action[4], action[5] = 1.0, (1.0 if phase["closing"] > 2 else -1.0)
        return action
    yaw_err = object_yaw_error(obs)
    xy = obs[6:8]  # object position relative to the grip point, horizontal part
    action[:2] = np.clip(0.9 * xy / max_move, -1.0, 1.0)
    action[3] = np.clip(0.9 * yaw_err / max_yaw, -1.0, 1.0)
    action[4], action[5] = -1.0, -1.0
    if np.linalg.norm(xy) < descend_within and abs(yaw_err) < 0.15:
        dz = grasp_z - obs[2]
        if abs(dz) > 0.006:
            action[2] = np.clip(0.9 * dz / max_move, -1.0, 1.0)
        elif np.linalg.norm(xy) < ALIGNED:
            action[4] = 1.0
            phase["closing"] = 1
    return action


def object_yaw_error(obs: np.ndarray) -> float:
    """How far the gripper should turn so its jaws close across the object: across a box's faces (period
    pi/2), across an ellipsoid's shorter horizontal axis or a lying capsule's axis (period pi); spheres and
    upright cylinders need no turn."""
    shape = SHAPES[int(np.argmax(obs[16:21]))]
    if shape in ("sphere", "cylinder"):
        return 0.0
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, obs[9:13])
    rot = rot.reshape(3, 3)
    if shape == "box":
        axis, period = rot[:, 0], math.pi / 2
    elif shape == "ellipsoid":
        axis, period = (rot[:, 0] if obs[13] <= obs[14] else rot[:, 1]), math.pi
    else:  # capsule: its axis is local z, lying horizontal; close perpendicular to it
        axis, period = np.array([-rot[1, 2], rot[0, 2], 0.0]), math.pi
    target = math.atan2(axis[1], axis[0])
    current = math.atan2(obs[3], obs[4])
    return (target - current + period / 2) % period - period / 2
