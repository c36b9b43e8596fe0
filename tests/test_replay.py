import numpy as np
import psutil
import pytest
from conftest import fill_random

from seer_bench.errors import ConfigError
from seer_bench.replay import CompactReplay, PaperReplay, TransitionSpec, make_replay

DMC = TransitionSpec((9, 100, 100), action_dim=6, frame_stack=3, episode_steps=250)


def arrays_nbytes(replay) -> int:
    """Independent count: numpy's nbytes of every array the replay holds."""
    return sum(v.nbytes for v in vars(replay).values() if isinstance(v, np.ndarray)) + sum(
        v.nbytes for v in replay._scalars.values()
    )


@pytest.mark.parametrize("cls", [PaperReplay, CompactReplay])
def test_allocated_bytes_equal_numpy_nbytes_and_capacity_is_maximal(cls):
    budget = 50_000_000
    capacity = cls.capacity_for(DMC, budget)
    replay = cls(DMC, capacity)
    assert replay.allocated_bytes == arrays_nbytes(replay)
    assert replay.allocated_bytes <= budget < cls.total_bytes(DMC, capacity + 1)


def test_paper_layout_prices_a_transition_like_curl():
    # obs + next_obs: 2 x 9 x 100 x 100 uint8; action 6 x float32; reward and not_done float32
    replay = PaperReplay(DMC, 10)
    # pixels, action, reward, not_done, last
    assert replay.bytes_per_transition == 2 * 9 * 100 * 100 + 6 * 4 + 4 + 4 + 1


def test_compact_layout_holds_about_six_times_more():
    budget = 600_000_000
    ratio = CompactReplay.capacity_for(DMC, budget) / PaperReplay.capacity_for(DMC, budget)
    assert 5.85 < ratio < 5.95  # 180,032 vs 30,000 x (1 + 3 / 250) + 40 bytes


def test_budget_below_one_batch_names_budget_and_bytes_needed():
    with pytest.raises(
        ConfigError, match=r"0.001 GB .*fewer than one batch of 128.*needs at least 23044224 bytes"
    ):
        make_replay("paper", DMC, 1_000_000, batch_size=128)


def _stacks(replay, idx, offsets, size=84):
    return replay.obs(idx, offsets, size), replay.next_obs(idx, offsets, size), replay.scalars(idx)


@pytest.mark.parametrize("n,episode_steps", [(37, 10), (500, 10), (503, 7), (260, 3)])
def test_layouts_return_identical_batches_across_wraparound(n, episode_steps):
    spec = TransitionSpec((9, 20, 20), action_dim=2, frame_stack=3, episode_steps=10)
    paper, compact = PaperReplay(spec, 64), CompactReplay(spec, 64)
    fill_random(paper, n, seed=1, episode_steps=episode_steps)
    fill_random(compact, n, seed=1, episode_steps=episode_steps)
    assert len(compact) <= len(paper) == min(n, 64)
    # Shorter episodes than the ring was sized for evict the oldest compact transitions early.
    rng = np.random.default_rng(0)
    idx = compact.sample_indices(256, rng)
    offsets = rng.integers(0, 20 - 16 + 1, size=(256, 2))
    p_obs, p_next, p_scalars = _stacks(paper, idx, offsets, 16)
    c_obs, c_next, c_scalars = _stacks(compact, idx, offsets, 16)
    assert np.array_equal(p_obs, c_obs) and np.array_equal(p_next, c_next)
    for key in p_scalars:
        assert np.array_equal(p_scalars[key], c_scalars[key])


def test_sampled_crops_are_the_stored_pixels(filled_replay):
    rng = np.random.default_rng(0)
    idx = filled_replay.sample_indices(8, rng)
    offsets = rng.integers(0, 17, size=(8, 2))
    crops = filled_replay.obs(idx, offsets, 84)
    for i, (j, (y, x)) in enumerate(zip(idx, offsets)):
        assert np.array_equal(
            crops[i], filled_replay._obs[j % filled_replay.capacity, :, y : y + 84, x : x + 84]
        )


def test_fifo_keeps_the_newest_transitions(filled_replay):
    assert len(filled_replay) == 64 and filled_replay.tail == 0
    fill_random(filled_replay, 10, seed=5)
    assert len(filled_replay) == 64 and filled_replay.tail == 10 and filled_replay.head == 74
    idx = filled_replay.sample_indices(1000, np.random.default_rng(0))
    assert idx.min() >= 10 and idx.max() < 74


@pytest.mark.parametrize("layout", ["paper", "compact"])
def test_resident_bytes_grow_with_writes_and_match_real_rss(layout):
    replay = make_replay(layout, DMC, budget_bytes=2_000_000_000, batch_size=32)
    assert replay.resident_bytes == 0 and replay.allocated_bytes > 1_900_000_000
    proc = psutil.Process()
    before = proc.memory_info().rss
    fill_random(replay, 500, episode_steps=250)
    grown = proc.memory_info().rss - before
    assert 0 < replay.resident_bytes < replay.allocated_bytes / 10
    # The lazily mapped arrays occupy what was written, not the reservation (allow allocator noise).
    assert 0.8 * replay.resident_bytes < grown < 1.2 * replay.resident_bytes + 20_000_000


def test_compact_layout_writes_a_carried_on_stack_once_after_an_episode_end():
    """Atari after a lost life: the episode ends, the game and its frames go on; only
    new frames are stored."""
    spec = TransitionSpec((4, 6, 6), action_dim=3, frame_stack=4, episode_steps=50, discrete=True)
    replay = CompactReplay(spec, 40)
    frames = np.random.default_rng(0).integers(0, 256, (30, 1, 6, 6), dtype=np.uint8)
    stack = lambda i: np.concatenate(frames[i - 3 : i + 1])  # noqa: E731 - frames i-3..i, newest last
    pairs = [(stack(i), stack(i + 1), i == 7) for i in range(3, 8)]  # ends at 7 (a life lost)
    # one no-op frame (8 -> 9) later; game over
    pairs += [(stack(i), stack(i + 1), i == 11) for i in range(9, 12)]
    reset = np.concatenate([np.zeros((3, 6, 6), np.uint8), frames[20]])  # a new game: zero-padded
    pairs += [(reset, np.concatenate([reset[1:], frames[21]]), False)]
    for obs, nxt, last in pairs:
        replay.add(obs, 0, 0.0, nxt, terminal=last, last=last)
    # 4 + 5 frames for the first episode, then 1 + 3 (the stack carries on), then 4 + 1 for the new game.
    assert replay._frame_head == 9 + 4 + 5
    idx, corners = np.arange(len(pairs)), np.zeros((len(pairs), 2), np.int64)
    np.testing.assert_array_equal(replay.obs(idx, corners, 6), np.stack([p[0] for p in pairs]))
    np.testing.assert_array_equal(replay.next_obs(idx, corners, 6), np.stack([p[1] for p in pairs]))


def scalar_nbytes(spec: TransitionSpec) -> int:
    """Independent price of one transition's scalars: float32 action, reward and not_done, uint8 last."""
    return np.zeros(spec.action_dim + 2, np.float32).nbytes + np.zeros(1, np.uint8).nbytes


def transition_nbytes(spec: TransitionSpec) -> int:
    """Independent price of one paper-layout transition: obs and next_obs uint8 stacks and the scalars."""
    return 2 * np.zeros(spec.obs_shape, np.uint8).nbytes + scalar_nbytes(spec)


def test_a_budget_far_above_memory_allocates_only_the_runs_transitions():
    """Issue 17: `--budget-gb 10000` mapped 10 TB (ENOMEM). The capacity keeps the budget's figure; the
    arrays hold only the transitions a run of 100 steps can write."""
    replay = make_replay("paper", DMC, budget_bytes=10**13, batch_size=32, max_transitions=100)
    assert replay.capacity == 10**13 // transition_nbytes(DMC) and replay.slots == 100
    assert replay.allocated_bytes == arrays_nbytes(replay) == 100 * transition_nbytes(DMC)
    assert replay.bytes_per_transition == transition_nbytes(DMC)  # the budget's price, not the allocation's


@pytest.mark.parametrize("cls", [PaperReplay, CompactReplay])
def test_slots_are_the_capacity_or_the_run_length_whichever_is_smaller(cls):
    capacity = cls.capacity_for(DMC, 50_000_000)
    assert cls(DMC, capacity, max_transitions=capacity + 5).slots == capacity == cls(DMC, capacity).slots
    assert cls(DMC, capacity, max_transitions=capacity + 5).allocated_bytes == cls.total_bytes(DMC, capacity)
    capped = cls(DMC, capacity, max_transitions=40)
    assert (capped.capacity, capped.slots) == (capacity, 40)
    assert capped.allocated_bytes == arrays_nbytes(capped) < cls.total_bytes(DMC, capacity)
    if cls is CompactReplay:  # the worst case a run of 40 can write: every transition starts an episode
        frames = 40 * (DMC.frame_stack + 1) * np.zeros(DMC.frame_shape, np.uint8).nbytes
        assert capped.allocated_bytes == frames + 40 * (np.zeros(1, np.int64).nbytes + scalar_nbytes(DMC))
    else:
        assert capped.allocated_bytes == 40 * transition_nbytes(DMC)


@pytest.mark.parametrize("n", [30, 75])
def test_a_ring_of_fewer_slots_than_capacity_wraps_at_its_slots(n):
    spec = TransitionSpec((9, 20, 20), action_dim=2, frame_stack=3, episode_steps=10)
    capped, plain = PaperReplay(spec, 64, max_transitions=30), PaperReplay(spec, 30)
    fill_random(capped, n, seed=2, episode_steps=7)
    fill_random(plain, n, seed=2, episode_steps=7)
    assert (len(capped), capped.tail, capped.head) == (len(plain), plain.tail, plain.head) == (30, n - 30, n)
    idx = np.arange(capped.tail, capped.head)
    corners = np.zeros((len(idx), 2), np.int64)
    assert np.array_equal(capped.obs(idx, corners, 20), plain.obs(idx, corners, 20))
    assert np.array_equal(capped.next_obs(idx, corners, 20), plain.next_obs(idx, corners, 20))
    for key, values in capped.scalars(idx).items():
        assert np.array_equal(values, plain.scalars(idx)[key])
    window, want = capped.n_step(idx[:-3], 3, 0.9), plain.n_step(idx[:-3], 3, 0.9)
    assert all(np.array_equal(window[k], want[k]) for k in want)


def test_a_capped_compact_ring_holds_what_an_uncapped_one_holds_over_its_run_even_at_worst():
    """Episodes of one step write k + 1 frames per transition: the capped frame ring still evicts
    nothing that the budget's ring would keep."""
    spec = TransitionSpec((9, 20, 20), action_dim=2, frame_stack=3, episode_steps=10)
    capped, plain = CompactReplay(spec, 1000, max_transitions=50), CompactReplay(spec, 1000)
    for replay in (capped, plain):
        fill_random(replay, 50, seed=4, episode_steps=1)
    assert capped.frame_capacity == capped._frame_head == 50 * 4 < plain.frame_capacity
    assert len(capped) == len(plain) == 50
    idx, corners = np.arange(50), np.zeros((50, 2), np.int64)
    assert np.array_equal(capped.obs(idx, corners, 20), plain.obs(idx, corners, 20))
    assert np.array_equal(capped.next_obs(idx, corners, 20), plain.next_obs(idx, corners, 20))


def test_a_checkpoint_saves_slots_and_loads_only_into_the_same_sizes():
    spec = TransitionSpec((9, 20, 20), action_dim=2, frame_stack=3, episode_steps=10)
    replay = CompactReplay(spec, 64, max_transitions=30)
    fill_random(replay, 20, seed=1)
    state = replay.state_dict()
    assert (state["counters"]["capacity"], state["counters"]["slots"]) == (64, 30)
    twin = CompactReplay(spec, 64, max_transitions=30)
    twin.load_state_dict(state)
    idx, corners = np.arange(20), np.zeros((20, 2), np.int64)
    assert np.array_equal(twin.obs(idx, corners, 20), replay.obs(idx, corners, 20))
    with pytest.raises(ValueError, match=r"capacity 64, slots 30.*capacity 64, slots 31"):
        CompactReplay(spec, 64, max_transitions=31).load_state_dict(state)
