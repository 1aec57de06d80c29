"""The actor worker with a momentum (EMA) model and Intuitor's self-certainty (GPU only; runs inside Ray).

A subclass of verl's ``ActorRolloutRefWorker`` (verl/workers/engine_workers.py) with these worker methods:

* ``mgrpo_setup``: fp32 EMA copies of this rank's parameter shards (FSDP keeps each rank's shard local; the
  EMA is sharded the same way and never all-gathered), and, for a self-certainty reward, the per-token
  statistic of the old-log-prob pass switched from entropy to ``logsumexp(z) - mean(z)``.
* ``mgrpo_ema_update``: ``theta_k <- m theta_k + (1 - m) theta_q`` on the local shards (``mgrpo.core.ema_update_``,
  one ``torch._foreach_lerp_``), called by the trainer right after each actor update.
* ``mgrpo_sync_momentum_weights``: loads the EMA into the actor's shards, pushes them to the rollout engine
  through verl's own ``update_weights`` (the same path as the policy sync), and restores the policy shards.
  The normal end-of-step ``update_weights`` then puts the updated policy back into the rollout engine.
* ``mgrpo_save_momentum`` / ``mgrpo_load_momentum``: the EMA shards in the step checkpoint (one file per rank).
* ``update_weights`` (verl's weight sync) with ``momentum_placement = split``: the ranks of the momentum replicas
  hand their rollout server the EMA, the others the policy (``replica_split.split_weight_stream``).

On a GPU (one H200, 2026-12-04) the EMA update and the serial push have run for M-GRPO, 5 steps
(docs/gpu/2026-12-04-h200-steps/); the self-certainty swap, parameter offload and the split placement have not.
What is checked on the CPU, against verl 0.9.1, is listed in docs/verl_backend.md.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from mgrpo import core as mcore
from mgrpo.atomic import atomic_path
from mgrpo.verl_backend.replica_split import split_weight_stream
from verl.single_controller.base.decorator import Dispatch, register
from verl.workers.engine_workers import ActorRolloutRefWorker


def local_shards(module: torch.nn.Module) -> list[torch.Tensor]:
    """This rank's part of every parameter: the local tensor of an FSDP2 DTensor, the flat shard under FSDP1."""
    shards = []
    for param in module.parameters():
        data = param.data
        to_local = getattr(data, "to_local", None)
        shards.append(to_local() if callable(to_local) else data)
    return shards


SELF_CERTAINTY_CHUNK_ROWS = 1024


def self_certainty_from_logits(logits: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """Per token ``logsumexp(z) - mean(z)`` = KL(U || softmax(z)) + log V (z = logits / T, already scaled).

    Drop-in for verl's ``entropy_from_logits`` (same signature). Always chunked over tokens (``chunk_size`` rows,
    default SELF_CERTAINTY_CHUNK_ROWS): an fp32 copy of all [tokens, V] logits plus logsumexp's own would be ~4x
    the bf16 logits (17 GB a micro-batch at the paper's 4 x 3584 tokens and V = 152k). The constant log V is
    removed on the driver (stages.score_dataproto).
    """
    rows = logits.reshape(-1, logits.shape[-1])
    step = chunk_size or SELF_CERTAINTY_CHUNK_ROWS
    out = torch.empty(rows.shape[0], dtype=torch.float32, device=logits.device)
    for start in range(0, rows.shape[0], step):
        part = rows[start:start + step].float()
        out[start:start + step] = torch.logsumexp(part, dim=-1) - part.mean(dim=-1)
    return out.reshape(logits.shape[:-1])


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def _wait_for_device() -> None:
    """verl offloads parameters with non-blocking copies into pinned host memory; a host read must wait for them."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _settled_shards(module: torch.nn.Module) -> list[torch.Tensor]:
    """``local_shards`` once the device is done with them: the EMA swap reads, writes and restores the parameters
    on the host, and verl moves them with non-blocking copies (its offload into new pinned host storage, FSDP1's
    reload inside every weight export, FSDP2's per-tensor reads of host parameters). verl's weight sender
    synchronises only when a bucket fills, so inside the split placement's weight stream nothing else waits for
    them on a rank that sends nothing from one of its two exports."""
    _wait_for_device()
    return local_shards(module)


class MGRPOActorRolloutRefWorker(ActorRolloutRefWorker):
    _mgrpo_ema: list[torch.Tensor] | None = None
    _mgrpo_m: float = 0.99
    _mgrpo_sends_momentum: bool | None = None  # None: serial placement (every replica gets the policy)

    def _actor_module(self) -> torch.nn.Module:
        return self.actor.engine.module

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def mgrpo_setup(self, momentum: float, use_ema: bool, token_statistic: str = "entropy",
                    momentum_ranks: list[int] | None = None):
        """``momentum_ranks``: with the split placement, the ranks whose rollout server is a momentum replica."""
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum m must be in [0, 1] (got {momentum})")
        if momentum_ranks is not None and not use_ema:
            raise ValueError("momentum replicas need a momentum model (use_ema)")
        self._mgrpo_m = float(momentum)
        self._mgrpo_sends_momentum = None if momentum_ranks is None else _rank() in set(momentum_ranks)
        if token_statistic == "self_certainty":
            engine = self.actor.engine
            if getattr(engine.engine_config, "entropy_checkpointing", False):
                raise ValueError("self-certainty needs actor.entropy_checkpointing=false")
            engine.compute_entropy_from_logits = self_certainty_from_logits
        elif token_statistic != "entropy":
            raise ValueError(f"unknown token statistic {token_statistic!r}")
        if use_ema:
            # Where the parameters live now is where the EMA lives: on the GPU, or in host memory when verl offloads
            # the parameters (actor.fsdp_config.param_offload), which is what that option is chosen for.
            _wait_for_device()
            with torch.no_grad():
                self._mgrpo_ema = [s.detach().to(torch.float32).clone() for s in local_shards(self._actor_module())]
        return True

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def mgrpo_ema_update(self) -> float:
        """EMA step on local shards; returns this rank's seconds (device-synchronised)."""
        if self._mgrpo_ema is None:
            return 0.0
        _wait_for_device()  # the update (and any offload after it) is not part of the EMA's time
        started = time.perf_counter()
        shards = local_shards(self._actor_module())
        ema = self._mgrpo_ema
        if shards and ema and shards[0].device != ema[0].device:  # parameters offloaded to the CPU
            shards = [s.to(ema[0].device) for s in shards]  # blocking: the CPU lerp reads them next
        mcore.ema_update_(ema, shards, self._mgrpo_m)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - started

    @register(dispatch_mode=Dispatch.ONE_TO_ALL, blocking=False)
    async def mgrpo_sync_momentum_weights(self) -> float:
        """Push the EMA weights to the (sleeping) rollout engine; the actor keeps the policy weights.

        No ``global_steps``: verl's rollout then leaves the server's weight version (the policy's, set by the last
        end-of-step sync) as it is. That version is stamped on every trajectory and the trainer's staleness
        metrics subtract it from the step: a momentum push stamping the current step would make the momentum
        rows' staleness -1 (``training/off_policy/trajectory_staleness/*``)."""
        if self._mgrpo_ema is None:
            raise RuntimeError("mgrpo_sync_momentum_weights called without a momentum model (mgrpo_setup)")
        _wait_for_device()
        started = time.perf_counter()
        # verl's offload after the push gives the parameters new storage: ema_loaded restores the policy there
        with mcore.ema_loaded(lambda: _settled_shards(self._actor_module()), self._mgrpo_ema):
            await ActorRolloutRefWorker.update_weights(self, global_steps=None, mode="naive")
        return time.perf_counter() - started

    @register(dispatch_mode=Dispatch.ONE_TO_ALL, blocking=False)
    async def update_weights(self, global_steps: int = None, mode: str = "auto"):
        """verl's weight sync; with the split placement, momentum replicas get the EMA and the others the policy.

        Every rank exports both weight sets (collectives) through the engine's own export, which this swaps in for
        the call only; the actor keeps the policy."""
        if self._mgrpo_sends_momentum is None:
            return await ActorRolloutRefWorker.update_weights(self, global_steps=global_steps, mode=mode)
        engine = self.actor.engine
        export = engine.get_per_tensor_param

        def ema_in_actor():  # inside the weight stream, after (and before) verl's export offloads: see _settled_shards
            return mcore.ema_loaded(lambda: _settled_shards(self._actor_module()), self._mgrpo_ema)

        def split_export(**kwargs):
            def one_export():
                weights, peft_config = export(**kwargs)
                if peft_config is not None:
                    raise RuntimeError("momentum_placement 'split' does not sync LoRA adapters")
                return weights
            return split_weight_stream(one_export, ema_in_actor, self._mgrpo_sends_momentum), None

        _wait_for_device()
        engine.get_per_tensor_param = split_export
        try:
            return await ActorRolloutRefWorker.update_weights(self, global_steps=global_steps, mode=mode)
        finally:
            del engine.get_per_tensor_param  # back to the engine's own method (or a test's stand-in)
            if getattr(engine, "get_per_tensor_param", None) != export:
                engine.get_per_tensor_param = export

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def mgrpo_save_momentum(self, directory: str):
        if self._mgrpo_ema is None:
            return None
        path = Path(directory)
        with atomic_path(path / f"ema_rank_{_rank()}.pt") as tmp:
            torch.save([t.cpu() for t in self._mgrpo_ema], tmp)
        return str(path)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def mgrpo_load_momentum(self, directory: str):
        if self._mgrpo_ema is None:
            return False
        saved = torch.load(Path(directory) / f"ema_rank_{_rank()}.pt", weights_only=True)
        if len(saved) != len(self._mgrpo_ema):
            raise ValueError(f"{directory}: {len(saved)} EMA tensors for {len(self._mgrpo_ema)} parameters")
        with torch.no_grad():
            for ema, value in zip(self._mgrpo_ema, saved):
                ema.copy_(value.to(ema.device))
        return True
