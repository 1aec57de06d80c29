"""Worker-side pieces that run on any device: self-certainty per token, shard-local EMA; GPU paths skipped."""
import math
import os

import pytest
import torch

pytest.importorskip("verl")
from mgrpo.verl_backend.workers import local_shards, self_certainty_from_logits  # noqa: E402


def test_self_certainty_is_kl_uniform_plus_log_v():
    torch.manual_seed(0)
    z = torch.randn(7, 5)
    p = torch.softmax(z, dim=-1)
    V = z.shape[-1]
    kl_u_p = (1 / V * (torch.log(torch.full_like(p, 1 / V)) - torch.log(p))).sum(-1)  # KL(U || p)
    assert torch.allclose(self_certainty_from_logits(z), kl_u_p + math.log(V), atol=1e-5)
    assert torch.allclose(self_certainty_from_logits(z, chunk_size=3), kl_u_p + math.log(V), atol=1e-5)
    uniform = torch.zeros(2, V)
    assert torch.allclose(self_certainty_from_logits(uniform), torch.full((2,), math.log(V)))
    # [B, T, V] with more tokens than one default chunk, in bf16 as the engine gives them: same values per token
    many = torch.randn(3, 1000, V).to(torch.bfloat16)
    p = torch.softmax(many.float(), dim=-1)
    expected = (1 / V * (torch.log(torch.full_like(p, 1 / V)) - torch.log(p))).sum(-1) + math.log(V)
    got = self_certainty_from_logits(many)
    assert got.shape == (3, 1000) and got.dtype == torch.float32
    assert torch.allclose(got, expected, atol=1e-4)


def test_local_shards_are_views_so_the_ema_never_gathers():
    from mgrpo.core import ema_update_

    module = torch.nn.Linear(3, 2)
    shards = local_shards(module)
    assert all(s.data_ptr() == p.data.data_ptr() for s, p in zip(shards, module.parameters()))
    ema = [s.detach().float().clone() for s in shards]
    with torch.no_grad():
        module.weight.add_(1.0)
    before = [e.clone() for e in ema]
    ema_update_(ema, local_shards(module), 0.99)
    for b, e, p in zip(before, ema, module.parameters()):
        assert torch.allclose(e, 0.99 * b + 0.01 * p.detach(), atol=1e-7)


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: FSDP workers, the vLLM rollout engine "
                    "and the momentum weight swap only run under verl's Ray trainer on a GPU")
def test_gpu_end_to_end_srt_and_mgrpo(tmp_path, bench_script):
    """Two methods, three steps each, through bench/gpu_smoke.py (tiny random model); RUN_DIRs must be complete."""
    smoke = bench_script("gpu_smoke")
    out = tmp_path / "smoke.json"
    assert smoke.main(["--methods", "srt,mgrpo", "--steps", "3", "--warmup", "1", "--out", str(out)]) == 0


class _Engine:
    def __init__(self, module):
        self.module = module
        self.engine_config = type("Cfg", (), {"entropy_checkpointing": False})()
        self.compute_entropy_from_logits = None


def _worker(module):
    from types import SimpleNamespace

    from mgrpo.verl_backend.workers import MGRPOActorRolloutRefWorker

    worker = object.__new__(MGRPOActorRolloutRefWorker)  # no Ray / torch.distributed: the methods' own logic
    worker.actor = SimpleNamespace(engine=_Engine(module))
    return worker


def test_worker_ema_setup_update_save_load(tmp_path):
    module = torch.nn.Linear(4, 3)
    worker = _worker(module)
    worker.mgrpo_setup(momentum=0.9, use_ema=True, token_statistic="self_certainty")
    assert worker.actor.engine.compute_entropy_from_logits is self_certainty_from_logits
    initial = [p.detach().clone() for p in module.parameters()]
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    worker.mgrpo_ema_update()
    for ema, p0, p in zip(worker._mgrpo_ema, initial, module.parameters()):
        assert ema.dtype == torch.float32
        assert torch.allclose(ema, 0.9 * p0 + 0.1 * p.detach(), atol=1e-6)
    worker.mgrpo_save_momentum(str(tmp_path / "momentum"))
    saved = [e.clone() for e in worker._mgrpo_ema]
    for e in worker._mgrpo_ema:
        e.zero_()
    worker.mgrpo_load_momentum(str(tmp_path / "momentum"))
    assert all(torch.equal(a, b) for a, b in zip(worker._mgrpo_ema, saved))
    with pytest.raises(ValueError, match="momentum m"):
        worker.mgrpo_setup(momentum=1.5, use_ema=True)


@pytest.fixture()
def one_rank_group(tmp_path):
    """A one-process gloo group: verl's engine all-reduces the token count before its micro-batches."""
    import torch.distributed as dist

    assert not dist.is_initialized()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("autocast_dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16_autocast"])
@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
def test_self_certainty_comes_out_of_verls_remove_padding_forward(monkeypatch, one_rank_group, chunked,
                                                                  autocast_dtype):
    """verl 0.9.1's own ``FSDPEngineWithLMHead.infer_batch`` (the old-log-prob pass): sequences of different
    lengths packed into one row (remove padding), regrouped into token-budget micro-batches, logits scaled by T.
    After ``mgrpo_setup(token_statistic='self_certainty')`` its per-token ``entropy`` output must be each token's
    ``-mean_v log softmax(z / T)_v`` (= KL(U || p) + log V), computed here from a plain forward of each sequence
    alone; before the swap it is Shannon entropy, and the log-probs are the same either way. Only the device lookup
    is pointed at the CPU. Under bf16 autocast (verl's default ``mixed_precision.param_dtype``; CPU autocast's op
    lists, not CUDA's) the logits are bf16 and the statistic must still be computed in fp32 from them: computing it
    in bf16 is ~0.1 off here, 100x the tolerance."""
    from types import SimpleNamespace

    from tensordict import TensorDict
    from transformers import LlamaConfig, LlamaForCausalLM

    import verl.workers.engine.fsdp.transformer_impl as fsdp_engine
    from mgrpo.verl_backend.workers import MGRPOActorRolloutRefWorker
    from verl.utils import tensordict_utils as tu
    from verl.utils import torch_functional as verl_F
    from verl.workers.config import FSDPEngineConfig

    monkeypatch.setattr(fsdp_engine, "get_device_id", lambda: "cpu")
    monkeypatch.setattr(fsdp_engine, "get_device_name", lambda: "cpu")
    torch.manual_seed(0)
    vocab, T = 50, 1.5
    model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2)).eval()
    with torch.no_grad():  # peaked next-token distributions: a random model's are near uniform, where H ~ SC ~ log V
        model.lm_head.weight.mul_(200.0)
    engine = object.__new__(fsdp_engine.FSDPEngineWithLMHead)  # its forward path, without building FSDP on a GPU
    engine.engine_config = FSDPEngineConfig(use_torch_compile=False, entropy_from_logits_with_chunking=chunked,
                                            entropy_from_logits_chunk_size=3)
    engine.module, engine.use_ulysses_sp, engine.ulysses_sequence_parallel_size = model, False, 1
    engine.pad_to_length, engine._autocast_dtype = False, autocast_dtype
    engine.get_data_parallel_group, engine.get_data_parallel_size = (lambda: None), (lambda: 1)
    # what FSDPEngine.__init__ sets without torch.compile
    engine.compute_entropy_from_logits = (verl_F.entropy_from_logits_with_chunking if chunked
                                          else verl_F.entropy_from_logits)

    lengths = [7, 4, 9, 3]
    sequences = [torch.randint(0, vocab, (n,)) for n in lengths]

    def forward():
        def jagged(tensors):
            return torch.nested.as_nested_tensor(tensors, layout=torch.jagged)

        data = TensorDict({"input_ids": jagged(sequences), "position_ids": jagged([torch.arange(n) for n in lengths]),
                           "loss_mask": jagged([torch.ones(n, dtype=torch.long) for n in lengths])},
                          batch_size=[len(lengths)])
        tu.assign_non_tensor(data, temperature=T, use_remove_padding=True, calculate_entropy=True,
                             use_dynamic_bsz=True, max_token_len_per_gpu=10)
        output = engine.infer_batch(data)["model_output"]
        return list(output["entropy"].unbind()), list(output["log_probs"].unbind())

    bf16 = autocast_dtype == torch.bfloat16
    alone = []
    with torch.no_grad():
        for seq in sequences:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(seq[None]).logits[0]
            assert logits.dtype == autocast_dtype
            log_p = torch.log_softmax((logits / T).float(), dim=-1)  # verl scales by T in the logits' dtype
            next_token = log_p[:-1].gather(-1, seq[1:, None])[:, 0]
            alone.append((-(log_p.exp() * log_p).sum(-1), -log_p.mean(-1), next_token))
            if bf16:  # bf16's 8-bit mantissa (0.4 %) bounds what its logits do to the statistic
                fp32_certainty = -torch.log_softmax(model(seq[None]).logits[0] / T, dim=-1).mean(-1)
                assert torch.allclose(alone[-1][1], fp32_certainty, rtol=0.01, atol=0)

    shannon, log_probs_before = forward()
    worker = object.__new__(MGRPOActorRolloutRefWorker)
    worker.actor = SimpleNamespace(engine=engine)
    worker.mgrpo_setup(momentum=0.99, use_ema=False, token_statistic="self_certainty")
    certainty, log_probs_after = forward()
    for (want_entropy, want_certainty, want_next), h, c, lp0, lp1 in zip(alone, shannon, certainty,
                                                                        log_probs_before, log_probs_after):
        assert c.dtype == torch.float32
        assert torch.allclose(c, want_certainty, atol=1e-3 if bf16 else 1e-5)
        assert not torch.allclose(c, h.float(), atol=1e-2)  # the statistics differ, so the swap is what is seen
        assert torch.equal(lp0, lp1)
        if not bf16:  # verl's own entropy (bf16 when not chunked) and log-probs of bf16 logits differ in rounding
            assert torch.allclose(h, want_entropy, atol=1e-5)
            assert torch.allclose(lp1[:-1], want_next, atol=1e-5)
        elif chunked:  # the paper config's setting: Shannon entropy (the IQR filter's input) in fp32 from bf16 logits
            assert h.dtype == torch.float32 and torch.allclose(h, want_entropy, atol=1e-3)
        else:  # verl's default: computed in bf16, too coarse for comparing trajectories
            assert h.dtype == torch.bfloat16 and not torch.allclose(h.float(), want_entropy, atol=1e-2)


def _syncing_worker(monkeypatch, module, events, param_offload, momentum_ranks=None):
    """A worker whose actor engine exports ``module``'s weights and whose rollout engine records what it receives;
    verl 0.9.1's own ``update_weights`` runs, with only device plumbing (CUDA allocator settings, cache flushes,
    the barrier) stubbed: there is no GPU here. With parameter offload verl moves the parameters to the host after
    the push, so they live in new storage (emulated by giving every parameter a fresh copy of itself)."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    import verl.workers.engine_workers as engine_workers

    monkeypatch.setattr(engine_workers, "set_expandable_segments", lambda enable: None)
    monkeypatch.setattr(engine_workers, "get_torch_device",
                        lambda: SimpleNamespace(empty_cache=lambda: None, synchronize=lambda: None))
    monkeypatch.setattr(engine_workers, "log_gpu_memory_usage", lambda *a, **k: None)
    monkeypatch.setattr(torch.distributed, "barrier", lambda *a, **k: events.append("barrier"))

    worker = _worker(module)
    worker.mgrpo_setup(momentum=0.5, use_ema=True, momentum_ranks=momentum_ranks)
    for e in worker._mgrpo_ema:
        e.fill_(7.0)

    engine = worker.actor.engine
    engine.is_param_offload_enabled = param_offload

    def offload(device, model=True, optimizer=True, grad=True):  # FSDPEngine.to: the device round trip's new storage
        assert (device, model) == ("cpu", True)
        events.append("offload")
        with torch.no_grad():
            for p in module.parameters():
                p.data = p.data.clone()

    engine.to = offload
    engine.get_per_tensor_param = lambda layered_summon=False, base_sync_done=True: (
        ((name, p.detach()) for name, p in module.named_parameters()), None)

    class Rollout:
        async def resume(self, tags):
            events.append(("resume", tuple(tags)))

        async def update_weights(self, weights, peft_config=None, base_sync_done=True, global_steps=None):
            events.append(("update", {name: t.clone() for name, t in weights}, global_steps))

    worker.rollout = Rollout()
    worker.config = OmegaConf.create({"rollout": {"name": "vllm", "free_cache_engine": True,
                                                  "checkpoint_engine": {"backend": "naive"}}})
    worker.peft_merge, worker.base_sync_done, worker.layered_summon = False, False, False
    return worker


def _sync_order(events):
    return [e if isinstance(e, str) else e[0] for e in events]


@pytest.mark.parametrize("param_offload", [False, True], ids=["resident", "param_offload"])
def test_momentum_push_runs_verls_own_weight_sync_with_the_ema(monkeypatch, param_offload):
    """verl 0.9.1's decorated ``ActorRolloutRefWorker.update_weights`` itself (not a stand-in) runs inside
    ``mgrpo_sync_momentum_weights``: the rollout engine is woken, receives the EMA weights through the engine's
    per-tensor generator, gets its KV cache back after the ranks' barrier, and the actor keeps the policy weights,
    restored where the parameters live after verl's offload."""
    import asyncio

    events = []
    module = torch.nn.Linear(2, 2)
    worker = _syncing_worker(monkeypatch, module, events, param_offload)
    policy = [p.detach().clone() for p in module.parameters()]

    asyncio.run(worker.mgrpo_sync_momentum_weights())

    offloaded = ["offload"] if param_offload else []
    assert _sync_order(events) == ["resume", "update", *offloaded, "barrier", "resume"]
    assert events[0] == ("resume", ("weights",)) and events[-1] == ("resume", ("kv_cache",))
    sent, step = events[1][1], events[1][2]
    assert set(sent) == {"weight", "bias"} and all(torch.all(t == 7.0) for t in sent.values())
    # verl's vLLM rollout sets the server's weight version only for a step that is not None (read in its
    # update_weights); the version must stay the policy's, which the trainer's staleness metrics assume
    assert step is None
    assert all(torch.equal(p, q) for p, q in zip(module.parameters(), policy))  # the actor keeps the policy
    assert worker.base_sync_done is True


@pytest.mark.parametrize("param_offload", [False, True], ids=["resident", "param_offload"])
@pytest.mark.parametrize("momentum_ranks, sends", [(None, "policy"), ([1], "policy"), ([0], "ema")],
                         ids=["serial", "policy_replica", "momentum_replica"])
def test_weight_sync_sends_a_momentum_replica_the_ema(monkeypatch, param_offload, momentum_ranks, sends):
    """The end-of-step sync (verl's ``update_weights``, through our override): with the split placement this rank
    (rank 0) hands its rollout server the EMA when it is one of the momentum replicas' ranks, else the policy, at the
    step verl passes (the server's weight version); the actor keeps the policy and its own weight export."""
    import asyncio

    events = []
    module = torch.nn.Linear(2, 2)
    worker = _syncing_worker(monkeypatch, module, events, param_offload, momentum_ranks)
    policy = {name: p.detach().clone() for name, p in module.named_parameters()}
    own_export = worker.actor.engine.get_per_tensor_param

    asyncio.run(worker.update_weights(global_steps=4, mode="naive"))

    offloaded = ["offload"] if param_offload else []
    assert _sync_order(events) == ["resume", "update", *offloaded, "barrier", "resume"]
    sent, step = events[1][1], events[1][2]
    want = {name: torch.full_like(t, 7.0) for name, t in policy.items()} if sends == "ema" else policy
    assert set(sent) == set(want) and all(torch.equal(sent[name], want[name]) for name in want)
    assert step == 4
    assert all(torch.equal(p, policy[name]) for name, p in module.named_parameters())
    assert worker.actor.engine.get_per_tensor_param is own_export


@pytest.mark.parametrize("momentum_ranks", [[1], [0]], ids=["policy_replica", "momentum_replica"])
def test_split_sync_waits_for_verls_offload_copies_before_touching_the_parameters(monkeypatch, momentum_ranks):
    """Split placement with FSDP1 and ``param_offload``: each of the sync's two exports is verl's
    ``get_per_tensor_param``, which reloads the parameters to the GPU, takes the state dict there and offloads them
    again with a non-blocking copy into new pinned host storage (``offload_fsdp_model_to_cpu``). On a GPU that copy
    lands later; only a device synchronisation waits for it, and verl's weight sender synchronises only when a bucket
    fills, so a rank that sends nothing from an export (the policy export on a momentum replica's rank, the EMA
    export on the others) reaches the EMA swap, or its restore, with the copy still in flight. Emulated here: the
    offloaded storage starts as garbage (NaN) and receives its values at the next device synchronisation. Without a
    wait, the backup of the policy is garbage and the offload lands after the restore: the actor kept the EMA or
    NaN instead of the policy."""
    import asyncio
    from types import SimpleNamespace

    import verl.workers.engine_workers as engine_workers
    from mgrpo.verl_backend import workers as workers_module

    pending = []  # host copies issued by the "device" and not yet landed: (destination, source)

    def device_synchronize():
        while pending:
            destination, source = pending.pop(0)
            destination.copy_(source)

    events = []
    module = torch.nn.Linear(2, 2)
    worker = _syncing_worker(monkeypatch, module, events, param_offload=True, momentum_ranks=momentum_ranks)
    monkeypatch.setattr(workers_module, "_wait_for_device", device_synchronize)
    monkeypatch.setattr(engine_workers, "get_torch_device",
                        lambda: SimpleNamespace(empty_cache=lambda: None, synchronize=device_synchronize))
    policy = {name: p.detach().clone() for name, p in module.named_parameters()}

    def fsdp1_export_with_offload(layered_summon=False, base_sync_done=True):
        on_device = {name: p.detach().clone() for name, p in module.named_parameters()}  # reload, state dict
        with torch.no_grad():
            for name, p in module.named_parameters():  # offload: new host storage, filled by a pending copy
                p.data = torch.full_like(p.data, float("nan"))
                pending.append((p.data, on_device[name]))
        return iter(on_device.items()), None

    worker.actor.engine.get_per_tensor_param = fsdp1_export_with_offload
    worker.actor.engine.to = lambda *a, **k: events.append("offload")  # already on the host: nothing moves

    asyncio.run(worker.update_weights(global_steps=4, mode="naive"))
    device_synchronize()  # whatever was still in flight lands

    sent = events[1][1]
    want = {name: torch.full_like(t, 7.0) for name, t in policy.items()} if momentum_ranks == [0] else policy
    assert all(torch.equal(sent[name], want[name]) for name in want)
    assert all(torch.equal(p, policy[name]) for name, p in module.named_parameters()), \
        "the actor must keep the policy weights"


def test_momentum_replicas_need_a_momentum_model():
    worker = _worker(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="momentum replicas need a momentum model"):
        worker.mgrpo_setup(momentum=0.5, use_ema=False, momentum_ranks=[0])


@pytest.mark.parametrize("param_offload", [False, True], ids=["resident", "param_offload"])
@pytest.mark.parametrize("strategy", ["fsdp", "fsdp2"])
def test_ema_and_momentum_push_on_fsdp_shards_across_two_ranks(strategy, param_offload):
    """Two CPU ranks (gloo), the model sharded as verl's FSDP engine shards the actor (FSDP1 flat parameters and a
    sharded state dict, verl's default `fsdp`; FSDP2 DTensors): local shards are the parameters' own storage (a copy
    would make the push send the policy), and verl's own `update_weights`, with the engine's own weight export (the
    all-gather of full weights) and, if asked, its parameter offload and reload, hands the rollout engine the EMA of
    the full weights by name; the actor keeps the policy. Then the split placement's end-of-step sync: the last
    rank (a momentum replica's) hands its server the EMA, the other the policy (fixture script)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent / "fixtures" / "fsdp_momentum_ranks.py"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script), strategy, *(["offload"] if param_offload else [])],
                          capture_output=True, text=True, timeout=300, cwd=root, env=env)
    done = f"ok: {strategy}{' with param offload' if param_offload else ''}, 2 ranks"
    assert proc.returncode == 0 and done in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
