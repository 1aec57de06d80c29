import pytest
import torch

from mgrpo.core import ema_loaded, ema_update_


def _pair():
    torch.manual_seed(0)
    return [torch.randn(3, 4), torch.randn(5)], [torch.randn(3, 4), torch.randn(5)]


def test_m_zero_copies_m_one_freezes():
    ema, params = _pair()
    before = [e.clone() for e in ema]
    ema_update_(ema, params, 1.0)
    assert all(torch.equal(e, b) for e, b in zip(ema, before))
    ema_update_(ema, params, 0.0)
    assert all(torch.equal(e, p) for e, p in zip(ema, params))


def test_formula():
    ema, params = [torch.tensor([1.0, 2.0])], [torch.tensor([3.0, -2.0])]
    ema_update_(ema, params, 0.75)  # 0.75 * [1, 2] + 0.25 * [3, -2] = [1.5, 1.0]
    assert torch.allclose(ema[0], torch.tensor([1.5, 1.0]))


def test_repeated_updates_converge_geometrically():
    ema, params = [torch.zeros(1)], [torch.ones(1)]
    for _ in range(10):
        ema_update_(ema, params, 0.9)
    assert torch.allclose(ema[0], torch.tensor([1 - 0.9**10]))


def test_low_precision_policy_into_fp32_ema():
    ema, params = [torch.zeros(2)], [torch.ones(2, dtype=torch.bfloat16)]
    ema_update_(ema, params, 0.5)
    assert ema[0].dtype == torch.float32 and torch.allclose(ema[0], torch.full((2,), 0.5))


@pytest.mark.parametrize("m", [-0.1, 1.01])
def test_m_outside_unit_interval(m):
    with pytest.raises(ValueError, match="momentum m"):
        ema_update_([torch.zeros(1)], [torch.zeros(1)], m)


def test_ema_loaded_lends_the_ema_to_the_policy_storage_and_restores_the_policy():
    params = [torch.tensor([1.0, 2.0], dtype=torch.bfloat16), torch.tensor([[3.0]])]
    storage = [p.data_ptr() for p in params]
    ema = [torch.tensor([0.5, 0.25]), torch.tensor([[-1.0]])]  # fp32, as the worker keeps it
    with ema_loaded(lambda: params, ema):
        assert params[0].dtype == torch.bfloat16 and params[0].tolist() == [0.5, 0.25]  # cast into the policy's dtype
        assert params[1].tolist() == [[-1.0]] and [p.data_ptr() for p in params] == storage  # in place
    assert params[0].tolist() == [1.0, 2.0] and params[1].tolist() == [[3.0]]
    assert ema[0].tolist() == [0.5, 0.25]  # the EMA itself is untouched


def test_ema_loaded_restores_on_failure_and_into_moved_storage():
    params = [torch.tensor([1.0, 2.0])]
    with pytest.raises(RuntimeError, match="engine down"):
        with ema_loaded(lambda: params, [torch.zeros(2)]):
            raise RuntimeError("engine down")
    assert params[0].tolist() == [1.0, 2.0]

    holder = {"params": [torch.tensor([1.0, 2.0])]}
    with ema_loaded(lambda: holder["params"], [torch.zeros(2)]):
        holder["params"] = [p.clone() for p in holder["params"]]  # an offload round trip: new storage, EMA values
    assert holder["params"][0].tolist() == [1.0, 2.0]  # the policy went back where the parameters are now

    with pytest.raises(ValueError, match="1 EMA tensors but 2 policy tensors"):
        with ema_loaded(lambda: [torch.zeros(1), torch.zeros(1)], [torch.zeros(1)]):
            pass
