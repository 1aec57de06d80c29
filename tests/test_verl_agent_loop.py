"""The rollout side on the CPU through verl 0.9.1's own code: the TransferQueue agent-loop worker and the reward loop.

Prompts come from verl's RL dataset and collate function over data prepared by `mgrpo verl-prepare-data`, the
trainer marks and submits them (policy: M rollouts each; momentum: the same prompts, N rollouts each, under
`<uid>-momentum`), and verl's `AgentLoopWorkerTQ.generate_sequences` / `_run_prompt` fan them out. Only the single
agent loop (which would call vLLM) and TransferQueue's status writes are recorded instead of run: what is checked is
how many rollouts verl starts for each prompt and which fields reach the agent loop, which verl then stores with the
rollout (`_agent_loop_postprocess`: `field.update(kwargs)`).
"""
import asyncio
from collections import defaultdict

import numpy as np
import pytest
import torch

pytest.importorskip("verl")
pytest.importorskip("transfer_queue")
pytest.importorskip("hydra")

from mgrpo.verl_backend import stages  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory, bench_script):
    smoke = bench_script("gpu_smoke")
    root = tmp_path_factory.mktemp("agent_loop")
    data = smoke.build_data(root / "data")
    model = smoke.build_tiny_model(root / "model", data, warm_start_steps=0)  # the model's weights do not matter here

    from mgrpo.cli import build_parser, train_spec
    from mgrpo.verl_backend import trainer

    args = build_parser().parse_args(smoke.train_argv("mgrpo", model, data, root / "runs", steps=2))
    _, _, config = trainer.validate_spec(train_spec(args))
    return config


def tokenizer_of(config):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(config.actor_rollout_ref.model.path)


def train_dataset(config, files=None, is_train=True):
    from verl.trainer.ppo.utils import create_rl_dataset

    return create_rl_dataset(files or config.data.train_files, config.data, tokenizer_of(config), None,
                             is_train=is_train)


def dataloader_batch(config, n_prompts: int):
    """What verl's V1 trainer hands to `_submit_batch_to_rollout` (`_fetch_one_gen_batch` + `_next_train_batch`)."""
    import uuid

    from verl.utils import tensordict_utils as tu
    from verl.utils.dataset.rl_dataset import collate_fn

    dataset = train_dataset(config)
    batch_dict = collate_fn([dataset[i] for i in range(n_prompts)])
    batch_dict["uid"] = np.array([str(uuid.uuid4()) for _ in range(n_prompts)], dtype=object)
    batch = tu.get_tensordict(batch_dict)
    tu.assign_non_tensor_data(batch, "global_steps", 5)
    return batch


def test_every_smoke_prompt_survives_verls_length_filter(setup):
    # verl drops prompts longer than data.max_prompt_length; the smoke's (~111 tokens with the character tokenizer
    # and the system prompt) once exceeded its 64-token limit, which would have left no training data on the GPU.
    assert len(train_dataset(setup)) == 64


def test_policy_and_momentum_requests_through_verls_agent_loop_worker(setup, monkeypatch):
    import transfer_queue

    from mgrpo.verl_backend.verl_trainer import MGRPOTrainer
    from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopWorkerTQ

    config = setup
    G, N = int(config.actor_rollout_ref.rollout.n), int(config.mgrpo.momentum_rollouts)
    assert (G, N) == (8, 2)

    statuses, puts = defaultdict(list), []

    async def async_kv_put(key, partition_id, tag=None, **_):
        statuses[key].append(tag["status"])

    monkeypatch.setattr(transfer_queue, "async_kv_put", async_kv_put)
    monkeypatch.setattr(transfer_queue, "kv_batch_put", lambda **kw: puts.append(kw))

    class Manager:  # the trainer's handle on the agent-loop workers: keep what it is asked to generate
        def __init__(self):
            self.requests = []

        def generate_sequences(self, batch):
            self.requests.append(batch)

    trainer = object.__new__(MGRPOTrainer)  # no Ray workers: the trainer's rollout-request side only
    trainer.G, trainer.N, trainer.M = G, N, G - N
    trainer.global_steps, trainer.trainer_mode, trainer._submitted = 5, "sync", []
    trainer.split_placement = False
    trainer.agent_loop_manager = Manager()

    batch = dataloader_batch(config, n_prompts=3)
    uids = [str(u) for u in batch["uid"]]
    raw_prompts = {u: p for u, p in zip(uids, batch["raw_prompt"])}
    golds = {u: g for u, g in zip(uids, batch[stages.GOLD])}
    trainer._submit_batch_to_rollout(batch)
    momentum_batch, momentum_uids = trainer._momentum_prompts(uids[:2])
    assert momentum_uids == [u + stages.MOMENTUM_UID_SUFFIX for u in uids[:2]]
    assert [p["keys"] for p in puts] == [uids]  # the policy prompts registered with TransferQueue, as verl does

    worker = object.__new__(AgentLoopWorkerTQ.__ray_actor_class__)  # verl's worker, without its Ray actor
    worker.config, worker.background_tasks = config, set()
    sessions = defaultdict(list)

    async def run_agent_loop(sampling_params, trajectory, *, agent_name, trace=False, **kwargs):
        sessions[kwargs["uid"]].append({"sampling": sampling_params, "trajectory": trajectory,
                                        "agent": agent_name, **kwargs})

    worker._run_agent_loop = run_agent_loop

    async def generate_all():
        for request in trainer.agent_loop_manager.requests + [momentum_batch]:
            await worker.generate_sequences(request)
        await asyncio.gather(*list(worker.background_tasks))

    asyncio.run(generate_all())

    M = G - N
    assert {u: len(s) for u, s in sessions.items()} == {**{u: M for u in uids}, **{u: N for u in momentum_uids}}
    for uid, runs in sessions.items():
        momentum = uid in momentum_uids
        source = uid[: -len(stages.MOMENTUM_UID_SUFFIX)] if momentum else uid
        assert sorted(r["session_id"] for r in runs) == list(range(N if momentum else M))
        for run in runs:
            assert int(run[stages.IS_MOMENTUM]) == int(momentum)  # reaches the stored rollout fields
            assert "__rollout_n__" not in run  # consumed by verl as this prompt's rollout count
            assert list(run["raw_prompt"]) == list(raw_prompts[source])  # the same question for both models
            assert run["sampling"]["temperature"] == pytest.approx(1.1) and run["trajectory"]["validate"] is False
            assert run["global_steps"] == 5
            # The hidden gold answer travels with the rollout (pseudo-label diagnostics); the reward sees none.
            assert run[stages.GOLD] == golds[source] and run[stages.GOLD] not in ("", None)
            assert run["reward_model"]["ground_truth"] == ""
    assert all(s == ["running", "finished"] for s in statuses.values()) and set(statuses) == set(sessions)


class _ActorHandle:
    """What Ray hands verl for an actor: ``handle.method.remote(...)`` gives an awaitable (here: on this loop)."""

    def __init__(self, target):
        self._target = target

    def __getattr__(self, name):
        method = getattr(self._target, name)

        async def call(*args, **kwargs):
            result = method(*args, **kwargs)
            return await result if asyncio.iscoroutine(result) else result

        return type("Remote", (), {"remote": staticmethod(lambda *a, **k: asyncio.ensure_future(call(*a, **k)))})()


def test_split_placement_sends_momentum_requests_to_the_momentum_replicas(setup, monkeypatch):
    """Split placement, through verl's own request path: the trainer's prompts reach verl's AgentLoopWorkerTQ, which
    instantiates the agent loop each prompt names from its registry (our YAML loaded as verl loads
    agent_loop_config_path), whose requests go through verl's LLMServerClient to the router plugin. Every
    momentum rollout lands on the momentum replica, every policy rollout on a policy replica."""
    import transfer_queue
    from omegaconf import OmegaConf

    from mgrpo.verl_backend import replica_split as rs
    from mgrpo.verl_backend.trainer import SPLIT_AGENT_LOOP_FILE
    from mgrpo.verl_backend.verl_trainer import MGRPOTrainer
    from verl.experimental.agent_loop import agent_loop as verl_agent_loop
    from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopWorkerTQ
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl.workers.rollout.llm_server import LLMServerClient
    from verl.workers.rollout.replica import TokenOutput

    config = setup
    G, N = int(config.actor_rollout_ref.rollout.n), int(config.mgrpo.momentum_rollouts)
    monkeypatch.setattr(transfer_queue, "kv_batch_put", lambda **kw: None)

    async def async_kv_put(key, partition_id, tag=None, **_):
        pass

    monkeypatch.setattr(transfer_queue, "async_kv_put", async_kv_put)
    for entry in OmegaConf.load(SPLIT_AGENT_LOOP_FILE):  # AgentLoopWorker.__init__ with agent_loop_config_path
        monkeypatch.setitem(verl_agent_loop._agent_loop_registry, entry.name, entry)

    total = 2 * G  # P = 2 prompts x G rollouts
    everyone_in = {}

    class Server:  # a vLLM replica: answers with one token once every request is in flight, as in a long decode
        def __init__(self):
            self.served = 0

        async def generate(self, request_id, prompt_ids, sampling_params, **kwargs):
            self.served += 1
            event = everyone_in.setdefault("event", asyncio.Event())
            if sum(s.served for s in servers.values()) == total:
                event.set()
            await event.wait()
            return TokenOutput(token_ids=[5], extra_fields={"global_steps": 5})

    servers = {f"replica-{i}": Server() for i in range(4)}  # R = 4 replicas, G = 8, N = 2: k = 1
    router = rs.MomentumSplitLoadBalancer({sid: _ActorHandle(s) for sid, s in servers.items()})
    router.set_momentum_servers(rs.momentum_replica_count(len(servers), G, N))
    routes = []  # (request id, server) as the router decided them
    acquire = router.acquire_server

    def recorded_acquire(request_id, **extra):
        server_id, handle = acquire(request_id, **extra)
        routes.append((request_id, server_id))
        return server_id, handle

    router.acquire_server = recorded_acquire

    class Manager:
        def __init__(self):
            self.requests = []

        def generate_sequences(self, batch):
            self.requests.append(batch)

    trainer = object.__new__(MGRPOTrainer)
    trainer.G, trainer.N, trainer.M = G, N, G - N
    trainer.global_steps, trainer.trainer_mode, trainer._submitted = 5, "sync", []
    trainer.split_placement, trainer._momentum_running = True, []
    trainer.agent_loop_manager = Manager()
    batch = dataloader_batch(config, n_prompts=2)
    trainer._submit_batch_to_rollout(batch)
    policy, momentum = trainer.agent_loop_manager.requests  # the momentum prompts go out with the policy's
    assert trainer._momentum_running == [str(u) + stages.MOMENTUM_UID_SUFFIX for u in batch["uid"]]

    worker = object.__new__(AgentLoopWorkerTQ.__ray_actor_class__)  # verl's worker, without its Ray actor
    worker.config, worker.background_tasks = config, set()
    worker.llm_client = LLMServerClient(config, load_balancer_handle=_ActorHandle(router))
    worker.tokenizer, worker.processor, worker.hf_model_type = tokenizer_of(config), None, "llama"
    worker.dataset_cls, worker.tools = RLHFDataset, []
    stored = []

    async def keep(output, validate, **kwargs):  # instead of writing the rollout to TransferQueue
        stored.append(kwargs["uid"])

    worker._agent_loop_postprocess = keep

    async def generate_all():
        for request in (policy, momentum):
            await worker.generate_sequences(request)
        await asyncio.gather(*list(worker.background_tasks))

    asyncio.run(asyncio.wait_for(generate_all(), timeout=60))
    assert len(stored) == total
    # all in flight at once: P G / R = 2 x 8 / 4 = 4 sequences on every replica, the momentum ones on the last only
    assert {sid: s.served for sid, s in servers.items()} == {sid: 4 for sid in servers}
    assert router.get_status()["total_inflight"] == 0
    momentum_routes = [sid for request_id, sid in routes if rs.is_momentum_request(request_id)]
    assert momentum_routes == ["replica-3"] * (2 * N)  # marked by the agent loop, sent to the momentum replica
    assert "replica-3" not in {sid for request_id, sid in routes if not rs.is_momentum_request(request_id)}
    momentum_rows = [u for u in stored if u.endswith(stages.MOMENTUM_UID_SUFFIX)]
    assert len(momentum_rows) == 2 * N


def test_split_placement_waits_for_the_momentum_replicas_before_sleeping(setup):
    """verl's sync trainer puts every replica to sleep when the policy's batch is sampled (on_sample_end): with the
    split placement the momentum groups still running must finish first."""
    from types import SimpleNamespace

    import transfer_queue

    from mgrpo.verl_backend.verl_trainer import MGRPOTrainer

    trainer = object.__new__(MGRPOTrainer)
    trainer._momentum_running, trainer.timing_raw, trainer.curr_step_profile = ["a-momentum"], {}, False
    events = []
    trainer.checkpoint_manager = SimpleNamespace(sleep_replicas=lambda: events.append("sleep"))
    polls = iter([{}, {"a-momentum": {"status": "running"}}, {"a-momentum": {"status": "finished"}}])
    original = transfer_queue.kv_list

    def kv_list(partition_id):
        events.append("poll")
        return {"train": next(polls)}

    transfer_queue.kv_list = kv_list
    try:
        trainer.on_sample_end()
    finally:
        transfer_queue.kv_list = original
    assert events == ["poll", "poll", "poll", "sleep"] and "mgrpo_momentum_wait" in trainer.timing_raw


def test_momentum_prompts_of_a_prompt_never_submitted_are_refused(setup):
    from mgrpo.verl_backend.verl_trainer import MGRPOTrainer

    trainer = object.__new__(MGRPOTrainer)
    trainer.N, trainer.global_steps, trainer._submitted, trainer.split_placement = 2, 1, [], False
    with pytest.raises(RuntimeError, match="1 sampled prompts were never submitted"):
        trainer._momentum_prompts(["not-submitted"])


def test_rows_carry_the_momentum_flag_as_a_tensor(setup):
    """TransferQueue stores tensors per row; the flag must be a per-prompt int tensor, not non-tensor data."""
    from mgrpo.verl_backend.verl_trainer import MGRPOTrainer

    trainer = object.__new__(MGRPOTrainer)
    trainer.G, trainer.N, trainer.M = 8, 2, 6
    trainer.global_steps, trainer.trainer_mode, trainer._submitted = 1, "sync", []
    trainer.split_placement = False
    trainer.agent_loop_manager = type("M", (), {"generate_sequences": lambda self, b: None})()
    batch = dataloader_batch(setup, n_prompts=2)
    import transfer_queue

    original = transfer_queue.kv_batch_put
    transfer_queue.kv_batch_put = lambda **kw: None
    try:
        trainer._submit_batch_to_rollout(batch)
    finally:
        transfer_queue.kv_batch_put = original
    assert torch.equal(batch[stages.IS_MOMENTUM], torch.zeros(2, dtype=torch.int64))
    assert torch.equal(batch["__rollout_n__"], torch.full((2,), 6, dtype=torch.int64))
    momentum, _ = trainer._momentum_prompts([str(u) for u in batch["uid"]])
    assert torch.equal(momentum[stages.IS_MOMENTUM], torch.ones(2, dtype=torch.int64))
    assert torch.equal(momentum["__rollout_n__"], torch.full((2,), 2, dtype=torch.int64))


@pytest.mark.parametrize("split", ["train", "test"])
def test_verls_reward_loop_runs_the_harness_reward_function(setup, split):
    """verl's reward-loop manager, built from the composed config (the harness points it at reward.py), scores one
    rollout the way the agent loop asks: the extracted answer comes back in reward_extra_info for the vote, and
    only a validation row can earn a score (training rows carry no reference)."""
    from verl.trainer.ppo.reward import load_reward_manager  # what the reward-loop worker calls
    from verl.protocol import DataProto

    config = setup
    tokenizer = tokenizer_of(config)
    rows = train_dataset(config, files=config.data.train_files if split == "train" else config.data.val_files,
                         is_train=split == "train")
    row = rows[0]
    gold = row[stages.GOLD]
    assert row["extra_info"]["split"] == split and gold
    prompt = torch.tensor(tokenizer.encode("Q: ", add_special_tokens=False))
    response = torch.tensor(tokenizer.encode(f"so it is \\boxed{{{gold}}}", add_special_tokens=False))
    data = DataProto.from_dict(
        tensors={"prompts": prompt[None], "responses": response[None],
                 "attention_mask": torch.ones(1, len(prompt) + len(response), dtype=torch.int64)},
        non_tensors={"data_source": np.array([row["data_source"]], dtype=object),
                     "reward_model": np.array([row["reward_model"]], dtype=object),
                     "extra_info": np.array([dict(row["extra_info"])], dtype=object)})
    manager = load_reward_manager(config, tokenizer)
    result = manager.loop.run_until_complete(manager.run_single(data))  # the loop it was built on, as in the worker
    assert result["reward_extra_info"][stages.ANSWER] == gold
    assert result["reward_score"] == (1.0 if split == "test" else 0.0)
