import numpy as np
import pytest

from kerlym.memory import FrameRing, LatestFrame, ReplayMemory, RolloutBuffer


def fill(mem, episodes):
    """Episodes are lists of scalar observations; action = obs, reward = 10 * obs."""
    for ep in episodes:
        mem.start_episode(np.array([ep[0]], dtype=np.float32))
        for i, nxt in enumerate(ep[1:]):
            last = i == len(ep) - 2
            mem.add(action=int(ep[i]), reward=10.0 * ep[i], terminated=last, next_obs=np.array([nxt], np.float32))


def test_insert_and_gather_exact_contents():
    mem = ReplayMemory(10, (1,), nframes=1)
    fill(mem, [[1, 2, 3], [5, 6]])
    # frames 1 2 3 | 5 6 ; transitions start at 1, 2 and 5 (3 and 6 are final frames)
    assert len(mem) == 3
    np.testing.assert_array_equal(mem.valid[:5], [True, True, False, True, False])
    b = mem._gather(np.array([0, 1, 3]))
    np.testing.assert_array_equal(b.states[:, 0], [1, 2, 5])
    np.testing.assert_array_equal(b.next_states[:, 0], [2, 3, 6])
    np.testing.assert_array_equal(b.actions, [1, 2, 5])
    np.testing.assert_array_equal(b.rewards, [10, 20, 50])
    np.testing.assert_array_equal(b.terminated, [False, True, True])


def test_sample_only_returns_real_transitions():
    mem = ReplayMemory(10, (1,), nframes=1)
    fill(mem, [[1, 2, 3], [5, 6]])
    b = mem.sample(500, np.random.default_rng(0))
    pairs = set(zip(b.states[:, 0].tolist(), b.next_states[:, 0].tolist()))
    assert pairs == {(1.0, 2.0), (2.0, 3.0), (5.0, 6.0)}
    np.testing.assert_array_equal(b.actions, b.states[:, 0])
    np.testing.assert_array_equal(b.rewards, 10 * b.states[:, 0])


def test_newest_transitions_come_first():
    mem = ReplayMemory(20, (1,), nframes=1)
    fill(mem, [[1, 2, 3], [5, 6, 7, 8]])
    np.testing.assert_array_equal(mem._gather(mem.newest_indices(4)).states[:, 0], [7, 6, 5, 2])
    b = mem.sample(6, np.random.default_rng(0), newest=2)
    np.testing.assert_array_equal(b.states[:2, 0], [7, 6])


def test_wraparound_overwrites_oldest_and_keeps_counts():
    mem = ReplayMemory(5, (1,), nframes=1)
    fill(mem, [list(range(1, 9))])  # 8 frames into 5 slots
    assert mem.size == 5 and mem.ptr == 3
    np.testing.assert_array_equal(mem.frames[:, 0], [6, 7, 8, 4, 5])
    # slot 2 holds the newest frame (8): no transition yet; 4->5, 5->6, 6->7, 7->8 remain
    assert len(mem) == 4
    b = mem.sample(300, np.random.default_rng(1))
    assert set(zip(b.states[:, 0].tolist(), b.next_states[:, 0].tolist())) == {(4, 5), (5, 6), (6, 7), (7, 8)}


def test_frame_stacking_pads_with_first_frame_of_episode():
    ring = FrameRing(10, (1,), nframes=3)
    for t, x in enumerate([1, 2, 3, 4]):
        ring.push(np.array([x]), first=t == 0)
    ring.push(np.array([9]), first=True)  # new episode must not see 1..4
    np.testing.assert_array_equal(ring.stack(np.array([0, 1, 3, 4])), [[1, 1, 1], [1, 1, 2], [2, 3, 4], [9, 9, 9]])


def test_difference_frames_are_zero_at_episode_start():
    ring = FrameRing(10, (2,), nframes=2, difference=True)
    for t, x in enumerate([[1, 1], [4, 2], [10, 3]]):
        ring.push(np.array(x, dtype=np.uint8), first=t == 0)
    s = ring.stack(np.array([0, 1, 2]))
    assert s.dtype == np.float32
    # state t = [d(t-1), d(t)] with d(t) = frame t - frame t-1, d(0) = 0
    np.testing.assert_array_equal(s, [[0, 0, 0, 0], [0, 0, 3, 1], [3, 1, 6, 1]])


def test_uint8_difference_does_not_wrap_around():
    ring = FrameRing(4, (1,), nframes=1, difference=True, dtype=np.uint8)
    ring.push(np.array([200], np.uint8), first=True)
    ring.push(np.array([10], np.uint8), first=False)
    assert ring.latest()[0, 0] == -190.0


def test_stacking_never_reads_overwritten_history():
    ring = FrameRing(4, (1,), nframes=3)
    for t in range(6):  # one long episode: 0..5, ring keeps 2,3,4,5
        ring.push(np.array([t]), first=t == 0)
    oldest = ring.ptr  # slot of frame 2
    np.testing.assert_array_equal(ring.stack(np.array([oldest])), [[2, 2, 2]])
    np.testing.assert_array_equal(ring.latest(), [[3, 4, 5]])


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_latest_single_frame_state_is_a_copy_of_each_streams_newest_frame(dtype):
    ring = FrameRing(3, (2, 2), dtype=dtype, streams=2)  # 2x2 frames are flattened like stacked ones
    ring.push(np.full((2, 2), 1, dtype), first=True, stream=0)
    ring.push(np.array([[2, 3], [4, 5]], dtype), first=True, stream=1)
    ring.push(np.full((2, 2), 6, dtype), first=False, stream=0)
    newest0, newest1 = ring.latest(0), ring.latest(1)
    np.testing.assert_array_equal(newest0, [[6, 6, 6, 6]])
    np.testing.assert_array_equal(newest1, [[2, 3, 4, 5]])
    assert newest1.dtype == dtype and newest1.shape == (1, 4)
    np.testing.assert_array_equal(newest1, ring.stack(ring.last[1:2]))  # what the general path returns
    for _ in range(2):  # slots 0 and 1: the second overwrites stream 1's frame (capacity 3)
        ring.push(np.full((2, 2), 9, dtype), first=False, stream=0)
    assert ring.last[0] == 1
    np.testing.assert_array_equal(newest1, [[2, 3, 4, 5]])  # states handed out are not views of the ring


def test_latest_frame_gives_the_states_of_a_one_frame_ring_and_keeps_a_copy():
    latest, ring = LatestFrame((2, 2), np.float32), FrameRing(3, (2, 2), np.float32)
    frames = [np.array([[1.5, 2.0], [3.0, 4.25]]), np.array([[5.0, 6.0], [7.0, 8.0]]), np.array([[9.0, 1], [2, 3]])]
    for t, frame in enumerate(frames):
        first = t != 1
        latest.push(frame, first=first)
        ring.push(frame, first=first)
        state = latest.latest()
        np.testing.assert_array_equal(state, ring.latest())
        assert state.dtype == np.float32 and state.shape == (1, 4)
    frames[-1][0, 0] = -1.0  # the env reuses its observation's array: the state kept is unchanged
    np.testing.assert_array_equal(latest.latest(), [[9.0, 1.0, 2.0, 3.0]])
    with pytest.raises(ValueError):
        latest.push(np.zeros(3), first=False)


def test_images_stay_uint8_and_storage_is_one_frame_per_step():
    mem = ReplayMemory(1000, (84, 84, 1), dtype=np.uint8, nframes=4)
    assert mem.frames.dtype == np.uint8
    assert mem.frames.nbytes == 1000 * 84 * 84
    assert mem.nbytes < 1000 * 84 * 84 * 1.01


def test_empty_memory_refuses_to_sample():
    with pytest.raises(ValueError, match="empty"):
        ReplayMemory(4, (1,)).sample(2, np.random.default_rng(0))


def test_n_step_returns_by_hand():
    # Stream 0 runs 1 2 3 4 5 and terminates; stream 1 runs 10 11 12 and is cut off by a time limit
    # at 12 (no transition from 12); stream 0 then starts 20 21, still running. Rewards r = obs / 10.
    mem = ReplayMemory(32, (1,), streams=2)
    obs = lambda v: np.array([v], np.float32)  # noqa: E731
    mem.start_episode(obs(1), stream=0)
    mem.start_episode(obs(10), stream=1)
    for a, b in ((1, 2), (2, 3)):
        mem.add(0, a / 10, False, obs(b), stream=0)
    for a, b in ((10, 11), (11, 12)):  # interleaved with stream 0
        mem.add(0, a / 10, False, obs(b), stream=1)
    mem.add(0, 0.3, False, obs(4), stream=0)
    mem.add(0, 0.4, True, obs(5), stream=0)
    mem.start_episode(obs(20), stream=0)
    mem.add(0, 2.0, False, obs(21), stream=0)
    slot = {float(mem.frames[i, 0]): i for i in range(mem.size)}
    idx = np.array([slot[v] for v in (1.0, 2.0, 3.0, 4.0, 10.0, 11.0, 20.0)])
    b = mem._gather(idx, n_step=3, discount=0.5)
    np.testing.assert_allclose(
        b.rewards,
        [
            0.1 + 0.5 * 0.2 + 0.25 * 0.3,  # three rewards, bootstraps from 4
            0.2 + 0.5 * 0.3 + 0.25 * 0.4,  # the third step terminates
            0.3 + 0.5 * 0.4,  # two steps, then the episode's end
            0.4,
            1.0 + 0.5 * 1.1,  # stream 1: two steps, then the truncated last frame (bootstraps)
            1.1,
            2.0,  # the newest frame of a running episode has no transition yet
        ],
        rtol=1e-6,
    )
    np.testing.assert_array_equal(b.n_steps, [3, 3, 2, 1, 2, 1, 1])
    np.testing.assert_array_equal(b.next_states[:, 0], [4, 5, 5, 5, 12, 12, 21])
    np.testing.assert_array_equal(b.terminated, [False, True, True, True, False, False, False])
    np.testing.assert_array_equal(b.states[:, 0], [1, 2, 3, 4, 10, 11, 20])
    one = mem._gather(idx)  # one-step transitions are untouched and carry no n_steps
    np.testing.assert_allclose(one.rewards, [0.1, 0.2, 0.3, 0.4, 1.0, 1.1, 2.0], rtol=1e-6)
    assert one.n_steps is None and len(one.arrays()) == 5


def test_n_step_chains_run_on_across_the_rings_wraparound():
    mem = ReplayMemory(5, (1,))
    fill(mem, [list(range(1, 9))])  # slots hold 6 7 8 4 5; 4->5->6->7->8, 8 the newest frame
    b = mem._gather(np.array([3, 4]), n_step=10, discount=1.0)  # from 4 and 5
    np.testing.assert_array_equal(b.n_steps, [4, 3])
    np.testing.assert_allclose(b.rewards, [40 + 50 + 60 + 70, 50 + 60 + 70])
    np.testing.assert_array_equal(b.next_states[:, 0], [8, 8])
    np.testing.assert_array_equal(b.terminated, [True, True])  # 7 -> 8 was the episode's last step


def two_stream_rollout(legal=None):
    """Three steps of two envs with stacked pairs of scalar frames: env 0 terminates at t=1, env 1 is cut off there.

    Env 0 sees frames 1, 2, 3 (terminal), then 10, 11; env 1 sees 5, 6, 7 (truncated), then 20, 21. Action
    10 * t + env, log-prob -(t + 1) / 10, reward t + 1 for env 0 and 1 for env 1; values 2, 4, 1 and 0, 0, 0.
    """
    buf = RolloutBuffer(3, 2, (1,), np.float32, nframes=2, action_shape=(), action_dtype=np.int32)
    first = {0: 1.0, 1: 5.0}
    next_frames = {0: [2.0, 3.0, 11.0], 1: [6.0, 7.0, 21.0]}
    values = {0: [2.0, 4.0, 1.0], 1: [0.0, 0.0, 0.0]}
    for t in range(3):
        for i in (0, 1):
            if t in (0, 2):  # each env's episode starts, and starts again after t=1
                buf.start_episode(np.array([first[i] if t == 0 else 10.0 * (i + 1)], np.float32), i)
            state = buf.histories[i].latest()[0]
            reward = t + 1.0 if i == 0 else 1.0
            ended = (t == 1 and i == 0, t == 1 and i == 1)  # terminated, truncated
            mask = None if legal is None else legal[t][i]
            nxt = np.array([next_frames[i][t]], np.float32)
            buf.add(i, state, 10 * t + i, -(t + 1) / 10, values[i][t], reward, *ended, nxt, mask)
        assert buf.advance() == (t == 2)
    return buf


def test_rollout_buffer_holds_each_streams_transitions_and_bootstrap_states():
    buf = two_stream_rollout()
    np.testing.assert_array_equal(buf.states[..., 0], [[1, 5], [1, 5], [10, 20]])  # the older frame of each pair
    np.testing.assert_array_equal(buf.states[..., 1], [[1, 5], [2, 6], [10, 20]])
    np.testing.assert_array_equal(buf.actions, [[0, 1], [10, 11], [20, 21]])
    np.testing.assert_array_equal(buf.rewards, [[1, 1], [2, 1], [3, 1]])
    np.testing.assert_array_equal(buf.terminated, [[False, False], [True, False], [False, False]])
    np.testing.assert_array_equal(buf.truncated, [[False, False], [False, True], [False, False]])
    # Each env's newest state, then the truncated episode's final state (its frames 6 and 7); not the terminal one's.
    np.testing.assert_array_equal(buf.bootstrap_states(), [[10, 11], [20, 21], [6, 7]])
    assert [(t, i) for t, i, _ in buf.truncations] == [(1, 1)]


def test_rollout_buffer_finishes_with_gae_by_hand_and_resets():
    buf = two_stream_rollout()
    # V of the bootstrap states: 6 and 2 at the rollout's end, 8 after the truncation. gamma = lambda = 0.5.
    rollout = buf.finish(np.array([6.0, 2.0, 8.0]), discount=0.5, lam=0.5)
    # Env 0: deltas 1 + 0.5 * 4 - 2 = 1, 2 - 4 = -2 (terminated: no bootstrap), 3 + 0.5 * 6 - 1 = 5;
    #   A2 = 5, A1 = -2 (the episode ended), A0 = 1 + 0.25 * -2 = 0.5.
    # Env 1: deltas 1 + 0.5 * 0 = 1, 1 + 0.5 * 8 = 5 (truncated: the final state's value), 1 + 0.5 * 2 = 2;
    #   A2 = 2, A1 = 5, A0 = 1 + 0.25 * 5 = 2.25.
    # V(s_{t+1}): the next row's values, the truncation's 8, and the end's 6 and 2 (env 0's 1 at t=1 goes unused).
    np.testing.assert_array_equal(buf.next_values, [[4, 0], [1, 8], [6, 2]])
    # Flattened time major: (t0, env 0), (t0, env 1), (t1, env 0), ...
    np.testing.assert_allclose(rollout.advantages, [0.5, 2.25, -2.0, 5.0, 5.0, 2.0])
    np.testing.assert_allclose(rollout.returns, [2.5, 2.25, 2.0, 5.0, 6.0, 2.0])
    np.testing.assert_array_equal(rollout.values, [2, 0, 4, 0, 1, 0])
    np.testing.assert_allclose(rollout.log_probs, [-0.1, -0.1, -0.2, -0.2, -0.3, -0.3], rtol=1e-6)
    np.testing.assert_array_equal(rollout.actions, [0, 1, 10, 11, 20, 21])
    np.testing.assert_array_equal(rollout.states, [[1, 1], [5, 5], [1, 2], [5, 6], [10, 10], [20, 20]])
    assert rollout.legal is None and rollout.advantages.dtype == np.float32 and rollout.states.dtype == np.float32
    buf.reset()
    assert buf.t == 0 and not buf.full and buf.truncations == []
    np.testing.assert_array_equal(buf.bootstrap_states(), [[10, 11], [20, 21]])  # episodes run on across rollouts


def test_rollout_buffer_keeps_the_legal_actions_acted_on():
    legal = [[[1, 0, 1], [0, 1, 1]], [[1, 1, 0], [1, 1, 1]], [[0, 0, 1], [1, 0, 0]]]
    rollout = two_stream_rollout(legal).finish(np.zeros(3), discount=0.5, lam=0.5)
    np.testing.assert_array_equal(rollout.legal, np.reshape(legal, (6, 3)))
    assert rollout.legal.dtype == np.float32


def test_rollout_buffer_stores_box_actions_and_difference_states():
    buf = RolloutBuffer(1, 1, (2,), np.uint8, nframes=1, difference=True, action_shape=(2,), action_dtype=np.float32)
    buf.start_episode(np.array([3, 4], np.uint8))
    buf.add(0, np.zeros(2, np.float32), np.array([0.5, -2.5]), 0.0, 0.0, 0.0, False, False, np.array([1, 9], np.uint8))
    assert buf.advance() and buf.states.dtype == np.float32
    np.testing.assert_array_equal(buf.actions[0, 0], [0.5, -2.5])
    np.testing.assert_array_equal(buf.bootstrap_states(), [[-2, 5]])  # 1 - 3 and 9 - 4, not wrapped around in uint8


def test_a_rollout_saved_part_way_finishes_as_the_one_that_went_on():
    def fill(buf, rows):
        for t in rows:
            for i in range(2):
                frame = np.array([10.0 * t + i], dtype=np.float32)
                truncated = (t, i) == (1, 0)
                state = buf.histories[i].latest()
                buf.add(i, state, t + i, -0.5, 0.1 * t, 1.0 + i, False, truncated, frame, legal=[1, t % 2])
            buf.advance()

    def make():
        return RolloutBuffer(4, 2, (1,), np.float32, nframes=2, difference=True)

    whole, part = make(), make()
    for buf in (whole, part):
        for i in range(2):
            buf.start_episode(np.array([-1.0 - i], dtype=np.float32), i)
        fill(buf, range(2))  # two rows, one of them truncated
    meta, arrays = part.state_dict()
    assert meta == {"t": 2, "truncations": [[1, 0]]} and arrays["states"].shape == (2, 2, 2)
    back = make()
    back.load_state_dict(meta, {k: np.array(v) for k, v in arrays.items()})
    for buf in (whole, back):
        fill(buf, range(2, 4))
    np.testing.assert_array_equal(back.bootstrap_states(), whole.bootstrap_states())
    bootstrap = np.array([0.3, -0.2, 0.7])  # the two envs' newest states, then the truncation's
    for a, b in zip(whole.finish(bootstrap, 0.9, 0.95), back.finish(bootstrap, 0.9, 0.95)):
        np.testing.assert_array_equal(a, b)
