"""Weights kept in other layouts, checked once per forward pass (asteroid_tdanet.derived)."""

from __future__ import annotations

import gc

import torch

from asteroid_tdanet.derived import Derived, forward_pass, same_bits


def counting() -> tuple[Derived, list[torch.Tensor]]:
    made: list[torch.Tensor] = []
    return Derived(lambda w: made.append(w) or 2 * w), made


def test_kept_between_passes_while_the_weight_is_unchanged():
    derived, made = counting()
    weight = torch.nn.Parameter(torch.randn(4, 3))
    with forward_pass():
        first = derived.get(weight)
        assert derived.get(weight) is first
        with forward_pass():  # nested: the outer pass's check holds
            assert derived.get(weight) is first
    with forward_pass():
        assert derived.get(weight) is first
    assert len(made) == 1
    torch.testing.assert_close(first, 2 * weight.detach())


def test_outside_a_pass_each_call_makes_a_fresh_copy():
    derived, made = counting()
    weight = torch.nn.Parameter(torch.randn(4, 3))
    first = derived.get(weight)
    torch.testing.assert_close(first, 2 * weight.detach())
    assert not first.requires_grad  # made under no_grad
    weight.data.mul_(3.0)
    second = derived.get(weight)
    torch.testing.assert_close(second, 2 * weight.detach())
    assert len(made) == 2 and not derived.entries  # nothing kept


def test_remade_after_any_change_of_the_weight():
    derived, made = counting()
    weight = torch.nn.Parameter(torch.randn(4, 3))
    updates = [
        lambda: weight.data.mul_(3.0),  # through .data: no version bump, same pointer
        lambda: weight.data.copy_(torch.randn(4, 3)),
        lambda: setattr(weight, "data", torch.randn(4, 3)),  # a new tensor under the name
        lambda: weight.add_(1.0),
    ]
    for update in updates:
        with torch.no_grad():
            update()
        with forward_pass():
            torch.testing.assert_close(derived.get(weight), 2 * weight.detach())
    assert len(made) == len(updates)


def test_views_have_their_own_copies_which_leave_with_the_weight():
    derived = Derived(lambda w: 2 * w)
    weight = torch.nn.Parameter(torch.randn(6, 3, 1))
    with forward_pass():
        whole = derived.get(weight.squeeze(-1))
        half = derived.get(weight.squeeze(-1)[3:])
    torch.testing.assert_close(whole, 2 * weight.detach().squeeze(-1))
    torch.testing.assert_close(half, 2 * weight.detach().squeeze(-1)[3:])
    assert len(derived.entries) == 2
    del weight
    gc.collect()
    assert not derived.entries


def test_inference_tensors_are_not_kept():
    derived, made = counting()
    with torch.inference_mode():
        weight = torch.randn(4, 3)
        with forward_pass():
            torch.testing.assert_close(derived.get(weight), 2 * weight)
            derived.get(weight)
    assert len(made) == 2 and not derived.entries


def test_same_bits_compares_bits_not_values():
    weight = torch.tensor([1.0, float("nan"), 0.0, -3.5])
    snapshot = weight.clone()
    assert same_bits(snapshot, weight)  # a NaN is still the same NaN
    weight[2] = -0.0  # equal in value, not in bits: the copy is remade
    assert not same_bits(snapshot, weight) and torch.equal(snapshot[2:], weight[2:])
    weight[2] = 0.0
    weight[3] = -3.4999998
    assert not same_bits(snapshot, weight)
    assert not same_bits(snapshot, weight[:3])  # another shape
    assert not same_bits(snapshot, snapshot.double())  # another dtype
    assert same_bits(torch.empty(0), torch.empty(0))
    # A strided weight is compared by value (torch.equal).
    grid = torch.arange(12.0).view(3, 4)
    assert same_bits(grid.t().contiguous(), grid.t())
    assert not same_bits(grid.t().contiguous(), (grid + 1).t())


def test_a_weight_holding_a_nan_keeps_its_copy_between_passes():
    derived, made = counting()
    weight = torch.nn.Parameter(torch.tensor([[1.0, float("nan")], [2.0, 3.0]]))
    for _ in range(3):
        with forward_pass():
            derived.get(weight)
    assert len(made) == 1


def test_without_a_c_library_weights_are_compared_by_value(monkeypatch):
    from asteroid_tdanet import derived

    def refuse(name):  # what Windows' ctypes does with CDLL(None)
        raise TypeError("LoadLibrary() argument 1 must be str, not None")

    monkeypatch.setattr(derived.ctypes, "CDLL", refuse)
    assert derived._libc_memcmp() is None
    monkeypatch.setattr(derived, "_memcmp", None)
    weight = torch.tensor([1.0, 2.0])
    assert same_bits(weight.clone(), weight)
    assert not same_bits(weight.clone(), weight + 1)
