"""`panda-grasp`: QT-Opt's grasping task (Kalashnikov et al. 2018, arXiv 1806.10293, section 4) on the Franka Panda.

The Panda of the Panda tasks (same packaged model, scene builder and IK) stands over a table with a bin area; each
episode puts one object there: one of `grasp`'s five primitive shapes with random size, mass, friction, position and
yaw. `objects="held_out"` draws every size outside the training ranges (robotrl.envs.grasp.draw_object), the test
of generalisation.

Actions (all in [-1, 1]), as in the paper: a Cartesian displacement (x MAX_TCP_STEP metres), a rotation about the
vertical axis (x MAX_YAW radians, held within +-YAW_LIMIT), the fingers (-1 open, +1 closed, as in `grasp`) and
terminate (> 0.5 ends the episode with the lift test). The displacement and rotation move the commanded pose (the
setpoint, kept within MAX_SETPOINT_LEAD of the hand), as `grasp`'s slide targets do; each control step solves one
damped-least-squares IK step towards it, as the Panda tasks do, with the hand pointing down at the yaw target. At
termination or at the horizon a lift test closes the fingers, raises the hand and checks that the object is at
least LIFT_HEIGHT above the table and touches both finger pads.

Reward: +1 for a successful lift test, -0.05 per step; info holds both terms and `is_success`. The observation
(`obs="state"`) is `grasp`'s layout (so its scripted grasp runs here too, through SetpointScript) with the setpoint's
offset from the hand (SETPOINT_ENTRIES) inserted before the fraction of the horizon that remains. `obs="pixels"`
replaces everything about the object with a camera: the hand's proprioception (PIXEL_PROPRIO entries: TCP
position, yaw sin/cos, finger width, the setpoint's offset, time left) followed by an RGB image from the fixed
over-the-shoulder camera, channel-first (3, H, W), its uint8 values as numbers in [0, 255] (robotrl's replay
stores them as uint8). The scripted grasp of a pixels env reads the simulator's state (privileged, as a
demonstrator), since the image alone does not give it the object's pose.
"""

from __future__ import annotations

import atexit
import copy
import functools
import math
import weakref
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco import MujocoEnv

from robotrl.config import RobotrlError
from robotrl.envs.grasp import (
    OBS_DIM,
    SHAPES,
    STEP_PENALTY,
    SUCCESS_REWARD,
    TERMINATE_ABOVE,
    ScriptedGrasp,
    apply_object,
    draw_object,
    rest_height,
    touching,
)
from robotrl.envs.panda import (
    FINGER_MAX,
    MAX_TCP_STEP,
    PREFIX,
    TIMESTEP,
    WORKSPACE_HIGH,
    WORKSPACE_LOW,
    PandaIK,
    compile_with_home,
    panda_model_dir,
    scene_spec,
)

START_TCP = np.array([0.5, 0.0, 0.2])
BIN_CENTRE = np.array([0.5, 0.0])
OBJECT_RANGE = 0.1  # metres either side of the bin's centre, in x and y
MAX_YAW = 0.3
YAW_LIMIT = math.pi / 2  # every shape's grasp repeats within a half turn; the wrist stays inside its range
LIFT_HEIGHT = 0.1
# the scripted grasp closes its pads (8 mm either side of the TCP) at the object's centre, at least this high
GRASP_TCP_Z = 0.01
OBJECT_SETS = ("train", "held_out")
# object_size="hidden": the state observation's object_size entries are always 0 (the export card names the block
# HIDDEN_SIZE_BLOCK and the C++ runtime zeroes them too); the object's centre already gives the grasp height, and a
# held-out size is an input the critic never saw in training
OBJECT_SIZE_MODES = ("observed", "hidden")
HIDDEN_SIZE_BLOCK = "object_size_hidden"
OBSERVATIONS = ("state", "pixels")
# setpoint_minus_tcp 3 and yaw_target_minus_yaw 1 (the commanded pose the arm is still moving to), before the time left
SETPOINT_ENTRIES = 4
STATE_OBS_DIM = OBS_DIM + SETPOINT_ENTRIES
# tcp_position 3, hand_yaw_sin_cos 2, finger_width 1, the setpoint's 4, horizon_fraction_left 1
PIXEL_PROPRIO = 7 + SETPOINT_ENTRIES
# how far the commanded TCP may lead the TCP itself, per axis: a hand blocked by the table or an object presses no
# harder than two full steps (no wind-up)
MAX_SETPOINT_LEAD = 0.1
SHOULDER_CAMERA = "shoulder"
# 10 Hz control (20 physics steps of 5 ms), as `grasp`: the arm's servos settle within a step, so each step moves
# the hand by what it commands and a grasp takes ~10 steps, short enough for QT-Opt's gamma 0.9 to see the lift
GRASP_FRAME_SKIP = 20
# metres past closed that the finger servo's target reaches at the command "closed" (see _compiled)
FINGER_SQUEEZE = 0.02


def _look_at(pos: np.ndarray, target: np.ndarray) -> list[float]:
    """A camera's xyaxes looking from `pos` at `target` with the world's z up."""
    forward = (target - pos) / np.linalg.norm(target - pos)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return [*right, *np.cross(right, forward)]


@functools.lru_cache(maxsize=2)
def _compiled(meshes: bool = True) -> mujoco.MjModel:
    """The Panda scene with a bin area, the object body (one geom per shape; the episode enables one) and an
    over-the-shoulder camera, compiled once per process with the home keyframe at START_TCP."""
    spec = scene_spec(with_cube=False)
    # Elliptic friction cones (MuJoCo's exact Coulomb cone; the default pyramid approximates it with facets): under
    # the pyramid, small objects slid out of a closed grip during the lift (the noise-free script lifted 44% of the
    # held-out objects smaller than the training range, 60% with elliptic cones; 70% -> 78% of all held-out ones)
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    # A closed hand squeezes: Menagerie's finger servo pulls each finger towards its command with 350 N/m, so
    # "closed" (command 0) pressed a 2.5 cm object with ~4 N, which a lift's acceleration pulled out of the pads
    # (the real hand grasps with up to 70 N continuous, Franka's datasheet). The same commands now drive the servo
    # to a target FINGER_SQUEEZE past closed (open stays open): 11-19 N on the objects here
    fingers = spec.actuator(PREFIX + "actuator8")
    kp = -fingers.biasprm[1]
    fingers.gainprm[0] = kp * (FINGER_MAX + FINGER_SQUEEZE) / FINGER_MAX
    fingers.biasprm[0] = -kp * FINGER_SQUEEZE
    world = spec.worldbody
    world.add_geom(name="bin", type=mujoco.mjtGeom.mjGEOM_BOX, size=[OBJECT_RANGE + 0.03] * 2 + [0.0005],
                   pos=[*BIN_CENTRE, 0.0005], rgba=[0.8, 0.8, 0.8, 1], contype=0, conaffinity=0)
    eye = np.array([0.2, 0.35, 0.45])
    world.add_camera(name=SHOULDER_CAMERA, pos=eye, xyaxes=_look_at(eye, np.array([*BIN_CENTRE, 0.0])), fovy=50)
    body = world.add_body(name="object", pos=[*BIN_CENTRE, 0.05])
    body.add_freejoint(name="object")
    for shape in SHAPES:
        kind = getattr(mujoco.mjtGeom, f"mjGEOM_{shape.upper()}")
        size = [0.02, 0.02, 0.02] if shape in ("box", "ellipsoid") else [0.02, 0.02, 0]
        body.add_geom(name=f"obj_{shape}", type=kind, size=size, mass=0.1, rgba=[0.1, 0.5, 0.9, 1],
                      friction=[1, 0.03, 0.003], condim=4, contype=2, conaffinity=1, solref=[0.01, 1])
    return compile_with_home(spec, START_TCP, meshes)


def tcp_rotation(yaw: float) -> np.ndarray:
    """The hand pointing down, turned by `yaw` about the vertical: Rz(yaw) @ TCP_ROTATION written out (the C++
    runtime builds the same entries), so the fingers close along (cos yaw, sin yaw)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[-s, c, 0.0], [c, s, 0.0], [0.0, 0.0, -1.0]])


class PandaGraspEnv(MujocoEnv):
    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"], "render_fps": 10}

    def __init__(self, max_steps: int | None = None, objects: str = "train", obs: str = "state",
                 image_size: int = 64, pixel_camera: str = SHOULDER_CAMERA, lift_seconds: float = 1.0,
                 object_size: str = "observed", **kwargs: Any) -> None:
        """max_steps: the horizon (robotrl.make_env passes the task card's); objects: "train" or "held_out";
        obs: "state" or "pixels" (an image_size x image_size RGB image from pixel_camera); object_size: "observed"
        or "hidden" (the state observation's size entries always 0; pixels never observe it)."""
        if objects not in OBJECT_SETS:
            raise RobotrlError(f"unknown panda-grasp object set '{objects}'; allowed: {', '.join(OBJECT_SETS)}")
        if obs not in OBSERVATIONS:
            raise RobotrlError(f"unknown panda-grasp observation '{obs}'; allowed: {', '.join(OBSERVATIONS)}")
        if object_size not in OBJECT_SIZE_MODES:
            raise RobotrlError(f"unknown panda-grasp object_size '{object_size}'; allowed: "
                               f"{', '.join(OBJECT_SIZE_MODES)}")
        if not 16 <= image_size <= 256:
            raise RobotrlError(f"panda-grasp image_size must be in 16..256 pixels, got {image_size}")
        self._max_steps, self.objects, self.obs_mode, self.lift_seconds = max_steps, objects, obs, lift_seconds
        self.object_size = object_size
        self.image_shape = (3, image_size, image_size) if obs == "pixels" else None
        self.pixel_camera, self._pixel_renderer = pixel_camera, None
        if obs == "pixels":
            pixels = 3 * image_size * image_size
            low = np.concatenate([np.full(PIXEL_PROPRIO, -np.inf), np.zeros(pixels)])
            high = np.concatenate([np.full(PIXEL_PROPRIO, np.inf), np.full(pixels, 255.0)])
            low[PIXEL_PROPRIO - 1], high[PIXEL_PROPRIO - 1] = 0.0, 1.0
        else:
            low, high = np.full(STATE_OBS_DIM, -np.inf), np.full(STATE_OBS_DIM, np.inf)
            low[-1], high[-1] = 0.0, 1.0
        kwargs.setdefault("camera_name", "front")
        obs_space = spaces.Box(low, high, dtype=np.float64)
        super().__init__(str(panda_model_dir() / "mjx_panda.xml"), GRASP_FRAME_SKIP, obs_space, **kwargs)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(6,), dtype=np.float32)
        m = self.model
        self.ik = PandaIK(m)
        self._tcp = m.site(PREFIX + "tcp").id
        self._finger = m.joint(PREFIX + "finger_joint1").qposadr[0]
        self._object = m.joint("object").qposadr[0]
        self._object_body = m.body("object").id
        self._shape_geoms = [m.geom(f"obj_{s}").id for s in SHAPES]
        self._object_rgba = m.geom_rgba[self._shape_geoms[0]].copy()
        self._pads = {m.geom(PREFIX + "left_finger_pad").id, m.geom(PREFIX + "right_finger_pad").id}
        self._home_key = m.key("home").id
        if obs == "pixels" and mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, pixel_camera) < 0:
            cameras = [m.camera(i).name for i in range(m.ncam)]
            raise RobotrlError(f"panda-grasp has no camera '{pixel_camera}'; allowed: {', '.join(cameras)}")
        self.shape, self.steps, self.yaw_target, self.setpoint = 0, 0, 0.0, START_TCP.copy()

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model = copy.copy(_compiled())
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    @property
    def max_steps(self) -> int:
        """Steps per episode: the last one runs the lift test (a termination, not a time-limit truncation)."""
        if self._max_steps is None:
            raise RobotrlError("PandaGraspEnv needs a horizon: robotrl.make_env('panda-grasp') (the card's), or "
                               "gymnasium.make('RobotrlPandaGrasp-v0', max_steps=N, max_episode_steps=N)")
        return int(self._max_steps)

    # ---------------------------------------------------------------- episode set-up
    def reset_model(self) -> np.ndarray:
        rng = self.np_random
        self.shape, size, mass, friction, quat, rest = draw_object(rng, held_out=self.objects == "held_out")
        self._apply_object(self.shape, size, mass, friction)
        qpos, qvel = self.model.key_qpos[self._home_key].copy(), np.zeros(self.model.nv)
        o = self._object
        # resting on the table (no settling steps: the state is then qpos, qvel and the object, all the C++ runtime
        # needs to start the same episode)
        qpos[o:o + 3] = [*(BIN_CENTRE + rng.uniform(-OBJECT_RANGE, OBJECT_RANGE, 2)), rest]
        yaw = rng.uniform(-math.pi, math.pi)
        mujoco.mju_mulQuat(qpos[o + 3:o + 7], np.array([math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]), quat)
        self.set_state(qpos, qvel)
        self.data.ctrl[:] = self.model.key_ctrl[self._home_key]
        mujoco.mj_forward(self.model, self.data)
        self.steps, self.yaw_target, self.setpoint = 0, 0.0, self.tcp_position()
        return self._get_obs()

    def _apply_object(self, shape: int, size: np.ndarray, mass: float, friction: float) -> None:
        self.shape = shape
        apply_object(self.model, self.data, self._shape_geoms, self._object_body, self._object_rgba, shape, size,
                     mass, friction)

    def task_state(self) -> dict[str, Any]:
        """The drawn object (it edits the model), the step counter and the commanded pose, for exact checkpoints."""
        g = self._shape_geoms[self.shape]
        return {"shape": self.shape, "size": self.model.geom_size[g].tolist(),
                "mass": float(self.model.body_mass[self._object_body]),
                "friction": float(self.model.geom_friction[g, 0]), "steps": self.steps, "yaw_target": self.yaw_target,
                "setpoint": self.setpoint.tolist()}

    def set_task_state(self, state: dict[str, Any]) -> None:
        self._apply_object(int(state["shape"]), np.asarray(state["size"]), state["mass"], state["friction"])
        self.steps, self.yaw_target = int(state["steps"]), float(state["yaw_target"])
        self.setpoint = np.asarray(state["setpoint"], dtype=np.float64)

    def scripted_policy(self) -> SetpointScript | PrivilegedScript:
        script = ScriptedGrasp(max_move=MAX_TCP_STEP, max_yaw=MAX_YAW, grasp_z=GRASP_TCP_Z, at_object_centre=True,
                               descend_within=0.02)
        if self.obs_mode == "state" and self.object_size == "observed":
            return SetpointScript(script)
        return PrivilegedScript(SetpointScript(script), self)  # the script reads the size (an ellipsoid's yaw)

    # ---------------------------------------------------------------- stepping
    def _control(self, tcp_target: np.ndarray, finger: float) -> None:
        """One control step: IK to joint targets for the TCP at `tcp_target` and the yaw target, the finger
        servo's command at `finger` (metres each when open; 0, closed, squeezes FINGER_SQUEEZE past it)."""
        self.data.ctrl[:7] = self.ik.joint_targets(self.data, tcp_target, tcp_rotation(self.yaw_target))
        self.data.ctrl[7] = finger
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        mujoco.mj_forward(self.model, self.data)  # positions and Jacobians at the state reached (see PandaEnv.step)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        # the action moves the commanded pose (as `grasp`'s slides and Fetch's mocap), not the lagging hand: the
        # servos settle over ~1.5 control steps, so a step from the hand itself moved it 60-85% of the command
        tcp = self.tcp_position()
        lead = np.clip(self.setpoint + MAX_TCP_STEP * a[:3], tcp - MAX_SETPOINT_LEAD, tcp + MAX_SETPOINT_LEAD)
        self.setpoint = np.clip(lead, WORKSPACE_LOW, WORKSPACE_HIGH)
        self.yaw_target = float(np.clip(self.yaw_target + MAX_YAW * a[3], -YAW_LIMIT, YAW_LIMIT))
        self._control(self.setpoint, FINGER_MAX * 0.5 * (1.0 - a[4]))
        self.steps += 1
        terminated = bool(a[5] > TERMINATE_ABOVE) or self.steps >= self.max_steps
        success = self._lift_test() if terminated else False
        info = {"reward_step": STEP_PENALTY, "reward_grasp": SUCCESS_REWARD if success else 0.0,
                "is_success": success, "shape": SHAPES[self.shape]}
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), info["reward_step"] + info["reward_grasp"], terminated, False, info

    def _lift_test(self) -> bool:
        """Close the fingers for 0.3 s in place, raise the hand LIFT_HEIGHT + 0.1 m and hold for lift_seconds;
        success when the object's lowest point is LIFT_HEIGHT above the table and it touches both pads."""
        hold = self.tcp_position()
        for _ in range(round(0.3 / self.dt)):
            self._control(hold, 0.0)
        top = min(hold[2] + LIFT_HEIGHT + 0.1, WORKSPACE_HIGH[2])
        for _ in range(round(self.lift_seconds / self.dt)):
            self._control(np.array([*hold[:2], min(self.tcp_position()[2] + MAX_TCP_STEP, top)]), 0.0)
        bottom = self.data.qpos[self._object + 2] - rest_height(SHAPES[self.shape], self._object_size())
        held = touching(self.data, self._shape_geoms[self.shape], self._pads) == self._pads
        return bool(bottom >= LIFT_HEIGHT and held)

    def _object_size(self) -> np.ndarray:
        return self.model.geom_size[self._shape_geoms[self.shape]]

    # ---------------------------------------------------------------- observation
    def tcp_position(self) -> np.ndarray:
        return self.data.site_xpos[self._tcp].copy()

    def hand_yaw(self) -> float:
        """The direction the fingers close along, about the vertical (radians)."""
        closing = self.data.site_xmat[self._tcp].reshape(3, 3)[:, 1]
        return math.atan2(closing[1], closing[0])

    def _get_obs(self) -> np.ndarray:
        return self.state_observation() if self.obs_mode == "state" else self.pixel_observation()

    def pixel_observation(self) -> np.ndarray:
        """Proprioception, then the camera image (3, H, W) flattened, values 0..255."""
        yaw = self.hand_yaw()
        proprio = [*self.tcp_position(), math.sin(yaw), math.cos(yaw), 2 * self.data.qpos[self._finger],
                   *self._setpoint_error(yaw), (self.max_steps - self.steps) / self.max_steps]
        return np.concatenate([proprio, self.camera_image().transpose(2, 0, 1).ravel()]).astype(np.float64)

    def camera_image(self) -> np.ndarray:
        """The pixel camera's RGB frame, (H, W, 3) uint8, rendered offscreen."""
        if self._pixel_renderer is None:
            from robotrl.video import ensure_gl_backend

            ensure_gl_backend()  # a one-line error naming what to install when nothing renders offscreen
            from gymnasium.envs.mujoco.mujoco_rendering import OffScreenViewer  # picks MUJOCO_GL when created

            size = self.image_shape[1]
            # no shadow map: it is most of a software-rendered frame's cost (150 -> 20 ms at 64 x 64 here)
            self.model.vis.quality.shadowsize = 0
            self._pixel_renderer = OffScreenViewer(self.model, self.data, width=size, height=size)
            # primitives and the arm's collision meshes (group 3), not its detailed visual meshes (group 2, 10x the
            # cost), and no sites
            self._pixel_renderer.vopt.geomgroup[:] = [1, 0, 0, 1, 0, 0]
            self._pixel_renderer.vopt.sitegroup[:] = 0
            # free the GL context with the env, or at exit before EGL itself shuts down (its atexit hook was
            # registered when the viewer's import loaded it, so this later one runs first)
            self._pixel_renderer_finalizer = weakref.finalize(self, self._pixel_renderer.close)
            self._pixel_renderer_finalizer.atexit = False
            atexit.register(self._pixel_renderer_finalizer)
        camera = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, self.pixel_camera)
        return self._pixel_renderer.render("rgb_array", camera_id=camera)

    def close(self) -> None:
        if self._pixel_renderer is not None:
            self._pixel_renderer_finalizer()
            self._pixel_renderer = None
        super().close()

    def state_observation(self, full: bool = False) -> np.ndarray:
        """The state observation; with object_size="hidden" its size entries are 0 unless `full` (the script's view)."""
        d, o = self.data, self._object
        yaw = self.hand_yaw()
        quat = d.qpos[o + 3:o + 7].copy()
        if quat[0] < 0:  # q and -q are the same rotation: keep the one with w >= 0
            quat = -quat
        one_hot = np.zeros(len(SHAPES))
        one_hot[self.shape] = 1.0
        remaining = (self.max_steps - self.steps) / self.max_steps
        size = self._object_size() if full or self.object_size == "observed" else np.zeros(3)
        return np.concatenate([self.tcp_position(), [math.sin(yaw), math.cos(yaw), 2 * d.qpos[self._finger]],
                               d.qpos[o:o + 3] - self.tcp_position(), quat, size, one_hot,
                               self._setpoint_error(yaw), [remaining]])

    def _setpoint_error(self, yaw: float) -> list[float]:
        """Where the commanded pose is from the hand: setpoint - TCP (metres), yaw target - yaw (radians)."""
        return [*(self.setpoint - self.tcp_position()), self.yaw_target - yaw]

    def observation_layout(self) -> list[dict[str, Any]]:
        """Each named block of the observation vector: name, unit, width (in order)."""
        if self.obs_mode == "pixels":
            c, h, w = self.image_shape
            layout = [("tcp_position", "m", 3), ("hand_yaw_sin_cos", "", 2), ("finger_width", "m", 1),
                      ("setpoint_minus_tcp", "m", 3), ("yaw_target_minus_yaw", "rad", 1),
                      ("horizon_fraction_left", "", 1),
                      (f"camera '{self.pixel_camera}' RGB image, channel-first ({c}, {h}, {w}), uint8 values 0-255 "
                       f"as numbers, row-major from the top-left pixel", "", c * h * w)]
        else:
            layout = [("tcp_position", "m", 3), ("hand_yaw_sin_cos", "", 2), ("finger_width", "m", 1),
                      ("object_minus_tcp", "m", 3), ("object_quaternion_wxyz", "", 4),
                      ("object_size" if self.object_size == "observed" else HIDDEN_SIZE_BLOCK, "m", 3),
                      ("object_shape_one_hot " + "/".join(SHAPES), "", 5), ("setpoint_minus_tcp", "m", 3),
                      ("yaw_target_minus_yaw", "rad", 1), ("horizon_fraction_left", "", 1)]
        return [{"name": n, "unit": u, "width": w} for n, u, w in layout]

    def pixel_spec(self) -> dict[str, Any]:
        """A pixel observation's image contract, for the export card: what a robot's camera code must produce."""
        c, h, w = self.image_shape
        cam = self.model.camera(self.pixel_camera)
        return {"camera": self.pixel_camera, "camera_pos_m": cam.pos.tolist(), "camera_quat_wxyz": cam.quat.tolist(),
                "fovy_deg": float(cam.fovy[0]), "shape": [c, h, w], "channel_order": "RGB, channel-first (C, H, W)",
                "dtype": "uint8 values 0-255, passed as float32 numbers (not scaled)",
                "slice": [PIXEL_PROPRIO, PIXEL_PROPRIO + c * h * w],
                "renderer": "MuJoCo offscreen, no shadows, geom groups 0 and 3 (primitives, collision meshes)"}

    def action_layout(self) -> list[dict[str, Any]]:
        """What each action dimension commands at +-1 (the agent side is [-1, 1])."""
        rate = 1.0 / self.dt
        rows = [*({"name": f"tcp_d{axis}", "unit": "m", "bound": MAX_TCP_STEP,
                   "meaning": f"moves the commanded TCP, kept within +-{MAX_SETPOINT_LEAD} m of the TCP and inside "
                              f"the workspace"} for axis in "xyz"),
                {"name": "dyaw", "unit": "rad", "bound": MAX_YAW,
                 "meaning": f"moves the yaw target, held within +-{YAW_LIMIT:.4f}"},
                {"name": "fingers", "unit": "", "bound": 1.0, "meaning": "-1 open, +1 closed"},
                {"name": "terminate", "unit": "", "bound": 1.0,
                 "meaning": f"> {TERMINATE_ABOVE} ends the episode with the lift test"}]
        return [{**r, "rate_hz": rate} for r in rows]

    def runtime_scene(self) -> mujoco.MjModel:
        """The scene without meshes (every object shape in it, none enabled), for the export's .mjb."""
        return _compiled(meshes=False)

    def object_params(self) -> list[float]:
        """The episode's object as the C++ runtime's initial state takes it: shape index, size (3), mass, friction."""
        state = self.task_state()
        return [float(state["shape"]), *state["size"], state["mass"], state["friction"]]

    def control_spec(self) -> dict[str, Any]:
        """How actions become motor commands, for the export card."""
        return {"mode": "ee_yaw", "rate_hz": 1.0 / self.dt, "physics_timestep_s": TIMESTEP,
                "substeps": self.frame_skip, "finger_travel_m": FINGER_MAX, "max_tcp_step_m": MAX_TCP_STEP,
                "max_yaw_step_rad": MAX_YAW, "yaw_limit_rad": YAW_LIMIT, "max_setpoint_lead_m": MAX_SETPOINT_LEAD,
                "workspace_low_m": WORKSPACE_LOW.tolist(), "workspace_high_m": WORKSPACE_HIGH.tolist(),
                "lift_height_m": LIFT_HEIGHT}


class SetpointScript:
    """`grasp`'s scripted grasp on panda-grasp's state observation, seen from the commanded pose: its TCP, yaw and
    object offset are the setpoint's (the observation's setpoint entries added), so each step moves the setpoint by
    what the script wants and the lagging hand follows; the setpoint entries themselves are dropped."""

    def __init__(self, script: ScriptedGrasp) -> None:
        self.script = script

    def reset(self) -> None:
        self.script.reset()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        tcp_error, yaw_error = obs[OBS_DIM - 1:OBS_DIM + 2], obs[OBS_DIM + 2]
        seen = np.concatenate([obs[:OBS_DIM - 1], obs[-1:]])
        seen[:3] += tcp_error
        seen[6:9] -= tcp_error
        yaw = math.atan2(obs[3], obs[4]) + yaw_error
        seen[3:5] = math.sin(yaw), math.cos(yaw)
        return self.script(seen)

    def state_dict(self) -> dict[str, int]:
        return self.script.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.script.load_state_dict(state)


class PrivilegedScript:
    """The scripted grasp for a pixels env, or a state env with its object size hidden: it ignores the observation
    and acts on the simulator's full state observation (a demonstrator with privileged information, for QT-Opt's
    first data)."""

    def __init__(self, script: SetpointScript, env: PandaGraspEnv) -> None:
        self.script, self.env = script, env

    def reset(self) -> None:
        self.script.reset()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.script(self.env.state_observation(full=True))

    def state_dict(self) -> dict[str, int]:
        return self.script.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.script.load_state_dict(state)
