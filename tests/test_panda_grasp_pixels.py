"""panda-grasp from pixels: the camera observation, the convolutional critic whose features the CEM shares, uint8
replay, a tiny QT-Opt run end to end with export parity, and the one-line errors for bad frames and set-ups."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from robotrl import QTOpt, RobotrlError, load_policy, make_env
from robotrl.algos.qtopt import QTOptAgent, QTOptConfig
from robotrl.envs.panda_grasp import PIXEL_PROPRIO, PandaGraspEnv
from robotrl.replay import ReplayBuffer

IMAGE = (3, 64, 64)
PIXELS = int(np.prod(IMAGE))


def _pixels_env(**kwargs) -> gym.Env:
    return gym.make("RobotrlPandaGrasp-v0", max_steps=20, max_episode_steps=20, obs="pixels", **kwargs)


def test_pixel_observation_is_proprioception_then_the_cameras_frame_channel_first():
    env = _pixels_env()
    obs, _ = env.reset(seed=5)
    u = env.unwrapped
    assert obs.shape == env.observation_space.shape == (PIXEL_PROPRIO + PIXELS,)
    image = obs[PIXEL_PROPRIO:]
    assert np.array_equal(image, np.round(image)) and image.min() >= 0 and image.max() <= 255 and image.std() > 10
    frame = u.camera_image()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert np.array_equal(image.reshape(IMAGE), frame.transpose(2, 0, 1))
    state = u.state_observation()
    assert np.allclose(obs[:PIXEL_PROPRIO], [*state[:6], *state[21:25], state[-1]])  # TCP, yaw, fingers, setpoint, time
    again, _ = env.reset(seed=5)
    assert np.array_equal(obs, again)  # rendering is deterministic
    for _ in range(3):
        moved, *_ = env.step(np.array([0, 0, -1.0, 0, -1, -1]))
    assert np.abs(moved[PIXEL_PROPRIO:] - image).mean() > 1.0  # the camera sees the hand come down
    env.close()


def test_cem_encodes_each_state_once_for_all_its_samples():
    cfg = QTOptConfig(hidden=(32, 32), image_shape=IMAGE)
    agent = QTOptAgent(PIXEL_PROPRIO + PIXELS, 6, cfg)
    seen: list[int] = []
    agent.critic.encoder.conv.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].shape[0]))
    obs = torch.rand(5, PIXEL_PROPRIO + PIXELS) * 2 - 1
    action = agent.actor(obs)
    assert action.shape == (5, 6) and seen == [5]  # one pass over 5 images, not 5 x 64 samples x 2 iterations
    single = agent.actor(obs[0])
    assert torch.equal(single, action[0])


def test_replay_keeps_the_image_as_uint8_and_returns_the_same_numbers():
    rng = np.random.default_rng(0)
    width = PIXEL_PROPRIO + 12
    buf = ReplayBuffer(width, 2, capacity=10, seed=0, uint8_tail=12)
    rows = [np.concatenate([rng.normal(size=PIXEL_PROPRIO), rng.integers(0, 256, 12)]) for _ in range(6)]
    for i in range(5):
        buf.add(rows[i], np.zeros(2), 0.0, rows[i + 1], terminated=False)
    assert buf.obs_u8.dtype == np.uint8 and buf.obs.shape == (10, PIXEL_PROPRIO)
    batch = buf.gather(np.array([0, 3]))
    assert batch.obs.dtype == torch.float32
    assert torch.equal(batch.obs, torch.tensor(np.stack([rows[0], rows[3]]), dtype=torch.float32))
    assert torch.equal(batch.next_obs[1], torch.tensor(rows[4], dtype=torch.float32))
    restored = ReplayBuffer(width, 2, capacity=10, seed=0, uint8_tail=12)
    restored.load_state_dict(buf.state_dict())
    assert torch.equal(restored.gather(np.array([0, 3])).obs, batch.obs)
    with pytest.raises(ValueError, match="do not fit"):
        ReplayBuffer(width, 2, capacity=10).load_state_dict(buf.state_dict())


def test_tiny_pixel_qtopt_trains_exports_with_parity_and_takes_camera_frames(tmp_path):
    agent = QTOpt("panda-grasp-pixels", seed=0, warmup_steps=40, batch_size=16, hidden=[32, 32], eval_every=0,
                  eval_episodes=2, buffer_size=200, keep_best=False)
    agent.learn(60)
    run = agent.run
    assert run.buffer.obs_u8.dtype == np.uint8 and run.buffer.obs_u8.shape[1] == PIXELS
    assert run.agent.updates > 0
    result = agent.export(tmp_path / "pixels.pt", formats=("pt",))  # .pt2 compiles the conv net for ~40 s
    assert result.max_abs_diff == 0.0
    policy = load_policy(tmp_path / "pixels.pt")
    card = policy.card
    assert card["pixel_input"]["shape"] == list(IMAGE) and card["pixel_input"]["camera"] == "shoulder"
    assert card["pixel_input"]["slice"] == [PIXEL_PROPRIO, PIXEL_PROPRIO + PIXELS]
    env = make_env("panda-grasp-pixels", normalize_actions=False)
    obs, _ = env.reset(seed=1)
    frame = env.unwrapped.camera_image()
    from_frame = policy({"proprio": obs[:PIXEL_PROPRIO], "image": frame})
    assert np.array_equal(from_frame, policy(obs))
    assert np.array_equal(policy(obs), agent.predict(obs))
    with pytest.raises(ValueError, match=r"expected a uint8 RGB frame of shape \(64, 64, 3\) from camera 'shoulder', "
                                         r"got float32 \(64, 64, 3\)"):
        policy({"proprio": obs[:PIXEL_PROPRIO], "image": frame.astype(np.float32)})
    with pytest.raises(ValueError, match=r"got uint8 \(32, 32, 3\)"):
        policy({"proprio": obs[:PIXEL_PROPRIO], "image": frame[:32, :32]})
    env.close()


def test_pixels_need_an_algorithm_that_encodes_images():
    with pytest.raises(RobotrlError, match="observes pixels, which --algo sac cannot encode; use qtopt"):
        from robotrl import SAC

        SAC("panda-grasp-pixels", seed=0)


def test_missing_camera_and_missing_renderer_are_one_line_errors(monkeypatch):
    with pytest.raises(RobotrlError, match="panda-grasp has no camera 'wrist'; allowed: front, side, shoulder"):
        PandaGraspEnv(max_steps=20, obs="pixels", pixel_camera="wrist")
    monkeypatch.setenv("MUJOCO_GL", "no-such-backend")
    env = PandaGraspEnv(max_steps=20, obs="pixels")
    with pytest.raises(RobotrlError, match="no OpenGL backend could render offscreen"):
        env.reset(seed=0)
