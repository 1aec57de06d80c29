"""The split placement of momentum rollouts (replica_split.py): replica arithmetic, the router, the weight stream.

Expectations are hand-computed: with k = R N / G momentum replicas of R, every replica writes P G / R sequences a
step; verl hands replica r the trainer ranks [r s, (r + 1) s) (s = GPUs per replica).
"""
import pytest

pytest.importorskip("verl")

from mgrpo.verl_backend import replica_split as rs  # noqa: E402


@pytest.mark.parametrize("replicas, G, N, want", [(8, 32, 8, 2), (4, 32, 8, 1), (8, 16, 4, 2), (2, 8, 4, 1)])
def test_momentum_replica_count_is_r_n_over_g(replicas, G, N, want):
    assert rs.momentum_replica_count(replicas, G, N) == want


@pytest.mark.parametrize("replicas, G, N, words", [
    (1, 32, 8, "R = 1"),  # one GPU, one replica: nothing to split
    (8, 32, 3, "whole number"),  # 8 * 3 / 32 = 0.75
    (8, 32, 0, "N = 0"),
    (2, 8, 8, "R = 2"),  # all rollouts momentum: no policy replica left
])
def test_impossible_splits_are_refused_with_their_numbers(replicas, G, N, words):
    with pytest.raises(ValueError, match=words):
        rs.momentum_replica_count(replicas, G, N)


def test_momentum_ranks_are_the_last_replicas_ranks():
    assert rs.momentum_ranks(8, 8, 2) == [6, 7]  # TP = 1
    assert rs.momentum_ranks(16, 8, 2) == [12, 13, 14, 15]  # TP = 2: two ranks per replica
    with pytest.raises(ValueError, match="8 trainer ranks do not split into 3"):
        rs.momentum_ranks(8, 3, 1)


def _router(n_servers, momentum):
    """Built the way verl builds a router plugin: the class from the YAML's router_class, (servers, yaml_config)."""
    from mgrpo.verl_backend.trainer import SPLIT_ROUTER_FILE
    from verl.workers.rollout.router import _load_router_yaml, _resolve_router_class

    config = _load_router_yaml(str(SPLIT_ROUTER_FILE))
    cls = _resolve_router_class(config["router_class"])
    assert cls is rs.MomentumSplitLoadBalancer
    router = cls({f"server-{i}": f"handle-{i}" for i in range(n_servers)}, config)
    router.set_momentum_servers(momentum)
    return router


def test_every_replica_writes_the_same_number_of_sequences():
    # R = 4, G = 8, N = 2: k = 1 momentum replica. P = 3 prompts: 3 x 6 policy sequences over 3 replicas and
    # 3 x 2 momentum sequences on 1, so P G / R = 6 on each.
    router = _router(4, rs.momentum_replica_count(4, 8, 2))
    placed = {}
    for i in range(3 * 6):
        sid, handle = router.acquire_server(f"policy-{i}")
        placed.setdefault(sid, []).append("policy")
    for i in range(3 * 2):
        sid, handle = router.acquire_server(rs.MOMENTUM_REQUEST_PREFIX + f"{i}")
        placed.setdefault(sid, []).append("momentum")
    assert {sid: len(kinds) for sid, kinds in placed.items()} == {f"server-{i}": 6 for i in range(4)}
    assert placed["server-3"] == ["momentum"] * 6  # the last server in verl's (replica) order
    assert all(set(placed[f"server-{i}"]) == {"policy"} for i in range(3))
    assert handle == "handle-3"


def test_released_requests_free_their_slot_and_a_session_stays_on_its_server():
    router = _router(3, 1)
    first, _ = router.acquire_server("turn")
    again, _ = router.acquire_server("turn")  # a multi-turn session: same server, as verl's sticky routing
    assert first == again and first in ("server-0", "server-1")
    router.release_server(first)
    router.release_server(first)
    assert router.get_inflight_count(first) == 0


def test_router_refuses_requests_before_it_knows_the_momentum_servers():
    router = rs.MomentumSplitLoadBalancer({"a": 1, "b": 2})
    with pytest.raises(RuntimeError, match="set_momentum_servers"):
        router.acquire_server("x")
    for count in (0, 2):
        with pytest.raises(ValueError, match=f"{count} momentum servers of 2"):
            router.set_momentum_servers(count)
    assert router.set_momentum_servers(1) == ["b"]


class _Export:
    """The engine's full-weight export: each call a fresh lazy stream; counts what each stream had to produce."""

    def __init__(self, state):
        self.state, self.produced = state, []

    def __call__(self):
        produced = []
        self.produced.append(produced)

        def stream():
            for name in ("w", "b"):
                produced.append(name)
                yield name, self.state["weights"]
        return stream()


@pytest.mark.parametrize("sends_momentum", [False, True])
def test_split_weight_stream_sends_one_set_and_exports_both(sends_momentum):
    from contextlib import contextmanager

    state = {"weights": "policy"}
    events = []

    @contextmanager
    def ema_loaded():
        events.append("ema in")
        state["weights"] = "ema"
        yield
        state["weights"] = "policy"
        events.append("policy back")

    export = _Export(state)
    sent = list(rs.split_weight_stream(export, ema_loaded, sends_momentum))
    want = "ema" if sends_momentum else "policy"
    assert sent == [("w", want), ("b", want)]
    # both exports ran to the end on every rank (they are collectives), the EMA one inside the swap
    assert export.produced == [["w", "b"], ["w", "b"]]
    assert events == ["ema in", "policy back"] and state["weights"] == "policy"
