"""Momentum rollouts on their own rollout replicas (``mgrpo.momentum_placement = split``; verl 0.9.1).

The default placement (``serial``) writes the N momentum rollouts per prompt in a second generation round, after the
policy's M, in the same engines. With R rollout replicas (one per GPU at TP = 1) the ``split`` placement instead
gives k = R * N / G of them the EMA weights and lets both kinds of rollout be generated at the same time, each
replica writing the same number of sequences: no second round, no second engine, no extra memory.

* **Weights** (``split_weight_stream``, used by the worker's ``update_weights``): at every weight sync every rank
  exports the policy's full weights and then the EMA's (the exports are collectives, so all ranks run both in the
  same order); the ranks of the last k replicas hand their rollout server the EMA, the others the policy.
* **Requests** (``MomentumAgentLoop`` + ``MomentumSplitLoadBalancer``): momentum prompts name this agent loop, which
  marks their request ids; verl's router plugin (``rollout.router_config_path``) sends marked requests to the
  momentum replicas only and every other request (the policy's, validation) to the policy replicas only.

Nothing here has run on a GPU (no session of this project has had more than one, and one GPU is one replica).
"""
from __future__ import annotations

import random
from contextlib import AbstractContextManager
from typing import Any, Callable, Iterable, Iterator

from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop
from verl.workers.rollout.router import GlobalRequestLoadBalancer

MOMENTUM_REQUEST_PREFIX = "mgrpo-momentum-"
MOMENTUM_AGENT = "mgrpo_momentum_single_turn"


# ---------------------------------------------------------------------------------------------------- arithmetic

def momentum_replica_count(replicas: int, G: int, N: int) -> int:
    """k = R * N / G: the replicas that hold the EMA, so that every replica writes R-th of a step's sequences."""
    if N < 1:
        raise ValueError(f"momentum_placement 'split' needs momentum rollouts (N = {N})")
    if replicas < 2 or (replicas * N) % G:
        raise ValueError(f"momentum_placement 'split' needs R * N / G to be a whole number of rollout replicas "
                         f"between 1 and R - 1 (R = {replicas} replicas, N = {N}, G = {G}); use 'serial'")
    count = replicas * N // G
    if not 1 <= count < replicas:
        raise ValueError(f"momentum_placement 'split': R * N / G = {count} momentum replicas of R = {replicas}")
    return count


def momentum_ranks(world_size: int, replicas: int, count: int) -> list[int]:
    """Trainer ranks whose colocated rollout server belongs to the last ``count`` replicas.

    verl hands replica r the workers ``[r * s, (r + 1) * s)`` of the actor's worker group (s = world / R), and a
    worker's index there is its rank (``RolloutReplica.init_hybrid``)."""
    if replicas < 1 or world_size % replicas:
        raise ValueError(f"{world_size} trainer ranks do not split into {replicas} rollout replicas")
    per_replica = world_size // replicas
    return list(range((replicas - count) * per_replica, world_size))


def is_momentum_request(request_id: str) -> bool:
    return str(request_id).startswith(MOMENTUM_REQUEST_PREFIX)


# ---------------------------------------------------------------------------------------------------- weights

def split_weight_stream(export: Callable[[], Iterable], ema_loaded: Callable[[], AbstractContextManager],
                        sends_momentum: bool) -> Iterator:
    """The per-tensor weights one rank hands its rollout server: the policy's, or the EMA's on a momentum replica.

    ``export()`` is the engine's full-weight export (a lazy all-gather per tensor): every rank drains it twice, the
    second time with the EMA in the actor's parameters, so the collectives match across ranks whatever each keeps.
    """
    for item in export():
        if not sends_momentum:
            yield item
    with ema_loaded():
        for item in export():
            if sends_momentum:
                yield item


# ---------------------------------------------------------------------------------------------------- requests

class MomentumSplitLoadBalancer(GlobalRequestLoadBalancer):
    """verl's least-in-flight router, restricted per request kind: momentum requests to the last k servers (the
    momentum replicas; verl lists servers in replica order), all others to the rest. k is set by the trainer
    (``set_momentum_servers``) before the first request, from the same replica count as the weights' split."""

    def __init__(self, servers: dict[str, Any], yaml_config: dict | None = None):
        super().__init__(servers=servers)
        self._momentum: set[str] | None = None

    def set_momentum_servers(self, count: int) -> list[str]:
        order = list(self._servers)
        if not 1 <= count < len(order):
            raise ValueError(f"{count} momentum servers of {len(order)}")
        momentum = order[len(order) - count:]
        self._momentum = set(momentum)
        return momentum

    def acquire_server(self, request_id: str, **extra) -> tuple[str, Any]:
        if self._momentum is None:
            raise RuntimeError("MomentumSplitLoadBalancer: set_momentum_servers was never called")
        momentum = is_momentum_request(request_id)
        pool = [sid for sid in self._inflight_requests if (sid in self._momentum) == momentum]
        if not pool:
            raise RuntimeError(f"no {'momentum' if momentum else 'policy'} rollout server is registered")
        server_id = self._request_id_to_server.get(request_id)
        if server_id not in pool:  # sticky within the request's pool (multi-turn), else least in flight
            fewest = min(self._inflight_requests[sid] for sid in pool)
            server_id = random.choice([sid for sid in pool if self._inflight_requests[sid] == fewest])
            self._request_id_to_server[request_id] = server_id
        self._inflight_requests[server_id] += 1
        return server_id, self._servers[server_id]


class _MarkedRequests:
    """An ``LLMServerClient`` whose requests carry the momentum mark in their id (what the router reads)."""

    def __init__(self, client):
        self._client = client

    async def generate(self, request_id, **kwargs):
        return await self._client.generate(MOMENTUM_REQUEST_PREFIX + str(request_id), **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


class MomentumAgentLoop(SingleTurnAgentLoop):
    """verl's single-turn agent loop with marked request ids (named by momentum prompts' ``agent_name``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.server_manager = _MarkedRequests(self.server_manager)
