"""Tier 1: ``compile_losses``, MDE's training losses fused by torch.compile, give eager mode's losses (within 1e-5
over 20 Adam steps, under several readings) and the same numbers for the same seed on the CPU. The CUDA case
runs where a GPU is present (bench/gpu.sh's CUDA tests). Each compilation takes seconds, so these tests live
apart from the model's."""

import pytest
import torch
from mde_support import batch_for, make_model, toy_problem


@pytest.fixture
def toy():
    return toy_problem()


def _twenty_steps(tmp_path, toy, device, **overrides) -> torch.Tensor:
    """The six loss terms of 20 Adam steps, each on its own batch."""
    users, items, n_users, n_items, v, t = toy
    model = make_model(tmp_path, users, items, n_users, n_items, v, t, device=torch.device(device), **overrides)[0]
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    terms = []
    for step in range(20):
        optimizer.zero_grad()
        parts = model.calculate_loss(batch_for(users, items, n_items, seed=step).to(device))
        sum(parts).backward()
        optimizer.step()
        terms.append(torch.stack(parts).detach().cpu())
    return torch.stack(terms)


OTHER_READINGS = {"cl_negatives": "all", "cl_similarity": "dot", "diff_form": "literal", "tradeoff_grad": False}
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.mark.parametrize(
    "device, readings",
    [
        pytest.param("cpu", {}, id="cpu-defaults"),
        pytest.param("cpu", OTHER_READINGS, id="cpu-other-readings"),
        pytest.param("cpu", {"use_nlt": False, "reg_scope": "all_parameters", "align_users": False}, id="cpu-no-nlt"),
        pytest.param("cuda", {}, id="cuda-defaults", marks=NO_CUDA),
    ],
)
def test_compiled_losses_equal_eager_over_20_steps(tmp_path, toy, device, readings):
    torch._dynamo.utils.counters.clear()
    settings = {"cl_weight": 0.3, "diff_weight": 0.5, "reg_weight": 0.01, **readings}
    eager = _twenty_steps(tmp_path / "eager", toy, device, **settings)
    fused = _twenty_steps(tmp_path / "fused", toy, device, compile_losses=True, **settings)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # compiled, as one graph (fullgraph)
    assert (eager[:, 3:5] != 0).all()  # L_diff and L_cl are part of what is compared
    torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-5)


def test_compiled_losses_are_deterministic(tmp_path, toy):
    first = _twenty_steps(tmp_path / "a", toy, "cpu", compile_losses=True)
    assert torch.equal(first, _twenty_steps(tmp_path / "b", toy, "cpu", compile_losses=True))


def test_a_grid_of_other_readings_runs_compiled_past_the_recompilation_limit(tmp_path, toy, monkeypatch):
    """MMRec's grid loop builds one model per point in one process; each point's readings make another graph.
    With the limit lowered to one graph, two readings in a row still run: each model compiles afresh."""
    torch.compiler.reset()  # no graphs of earlier tests that the two models could reuse
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    users, items, n_users, n_items, v, t = toy
    for readings in ({}, OTHER_READINGS):
        model = make_model(
            tmp_path / str(len(readings)), users, items, n_users, n_items, v, t, compile_losses=True, **readings
        )[0]
        model.calculate_loss(batch_for(users, items, n_items))


def test_without_a_cpp_compiler_the_model_says_what_to_do(tmp_path, toy, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-x7q")
    users, items, n_users, n_items, v, t = toy
    message = r"compile_losses: True needs a C\+\+ compiler.*no-such-compiler-x7q.*compile_losses: False in MDE.yaml"
    with pytest.raises(ValueError, match=message):
        make_model(tmp_path, users, items, n_users, n_items, v, t, compile_losses=True)
