"""DDP on CPU (gloo, 2 real processes): averaged gradients equal one process on the same global batch.

The ranks and the one-process reference run under one policy, ``numeric_policy``: one thread and
float64. In float32 a different summation order (another batch split, thread count or CPU's vector
width) already moves these gradients by about 1e-3 of their scale, because the compressed-spectrum
losses differentiate ``|X|^-0.7`` near silent bins; float64 moves them by about 1e-13, so "equal"
can be checked to 1e-9 on any CPU.
"""

import contextlib
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from speakup_fx.train.config import load_config
from speakup_fx.train.distributed import World, exit_rank, init_from_env, per_rank_batch, shutdown, unwrap
from speakup_fx.train.loop import build_state, train_step

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"


GENERATORS = ("streaming", "dfnet")
"""Checked under DDP: the shipped generator and the two-output one (GRU, EMA copy, two targets)."""


def global_batch(generator):
    gen = torch.Generator().manual_seed(3)
    target = 0.3 * torch.randn(4, 1, 1600, generator=gen, dtype=torch.float64)
    noisy = target + 0.1 * torch.randn(4, 1, 1600, generator=gen, dtype=torch.float64)
    return noisy, torch.cat([target, 0.5 * target], dim=1) if generator == "dfnet" else target


def tiny_config(generator="streaming"):
    config = load_config(TINY)
    config = replace(config, batch_size=4, optim=replace(config.optim, grad_clip=1e9))
    if generator == "dfnet":
        config = replace(
            config,
            generator="dfnet",
            dfnet=replace(config.dfnet, channels=8, gru_layers=1, df_bins=16),
            data=replace(config.data, targets=("reverberant", "early")),
            schedule=replace(config.schedule, adversarial_steps=0),
            optim=replace(config.optim, ema_decay=0.9),
            loss=replace(config.loss, weights={"gen/mrspec": 1.0, "gen/oversup": 1.0, "gen/sisdr": 0.01}),
        )
    return config


def gradients(state):
    return {n: p.grad.clone() for n, p in unwrap(state.generator).named_parameters()}


@contextlib.contextmanager
def numeric_policy():
    """One thread and float64 for the ranks and the reference alike; the caller's settings restored after."""
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)


def worker(rank, port, out_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    with numeric_policy():
        world = init_from_env("cpu")
        run_rank(world, Path(out_dir))
    exit_rank(world, 0)


def run_rank(world, out_dir):
    for generator in GENERATORS:
        state = build_state(tiny_config(generator), world)
        noisy, target = global_batch(generator)
        share = per_rank_batch(noisy.shape[0], world)
        rows = slice(share * world.rank, share * (world.rank + 1))
        train_step(state, noisy[rows], target[rows])
        torch.save({"grads": gradients(state), "params": unwrap(state.generator).state_dict()}, out_dir / f"{generator}_rank{world.rank}.pt")
    shutdown(world)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reference_step(generator):
    """One step of one process on the global batch, under the ranks' ``numeric_policy``."""
    with numeric_policy():
        single = build_state(tiny_config(generator), World(0, 1, torch.device("cpu")))
        train_step(single, *global_batch(generator))
    return single


def assert_close_to_scale(actual, expected, name, tolerance):
    """Elementwise ``|actual - expected| <= tolerance * max|expected|``: rounding scales with the tensor, not the element."""
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, atol=tolerance * scale + 1e-12, rtol=0, msg=lambda m: f"{name}: {m}")


@pytest.fixture(scope="module")
def ranks_dir(tmp_path_factory):
    """One step of each generator on two gloo ranks, each rank on half the global batch."""
    folder = tmp_path_factory.mktemp("ranks")
    mp.start_processes(worker, args=(free_port(), str(folder)), nprocs=2, join=True, start_method="spawn")
    return folder


@pytest.mark.parametrize("generator", GENERATORS)
def test_two_process_gradients_equal_one_process_on_the_global_batch(ranks_dir, generator):
    single = reference_step(generator)
    ranks = [torch.load(ranks_dir / f"{generator}_rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    # the ranks hold the same all-reduced gradient, so their parameters stay bit-identical
    for name, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][name]), name
    # the averaged shard gradients equal the global-batch gradient up to float64 summation order
    for name, grad in gradients(single).items():
        assert_close_to_scale(ranks[0]["grads"][name], grad, name, 1e-9)
    # Adam's first step is about lr * grad / (|grad| + eps): as sensitive as it gets where |grad| ~ eps,
    # and still far below a millionth of the learning rate for float64 gradient differences
    lr = single.opt_g.param_groups[0]["lr"]
    for name, value in unwrap(single.generator).state_dict().items():
        torch.testing.assert_close(ranks[0]["params"][name], value, atol=1e-6 * lr, rtol=0, msg=lambda m: f"{name}: {m}")


def test_the_global_batch_splits_evenly_across_ranks():
    assert per_rank_batch(16, World(0, 4, torch.device("cpu"))) == 4
    assert per_rank_batch(16, World(0, 1, torch.device("cpu"))) == 16
    with pytest.raises(ValueError, match="batch_size 6 must divide by the world size 4"):
        per_rank_batch(6, World(0, 4, torch.device("cpu")))


def test_training_restores_the_callers_thread_count(tmp_path):
    import synthetic

    from speakup_fx.train.loop import train

    synthetic.write_tiny_corpus(tmp_path / "corpus")
    config = tiny_config()
    config = replace(config, threads=1, data=replace(config.data, data_dir=str(tmp_path / "corpus"), cache_dir=str(tmp_path / "cache")))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train(config, tmp_path / "run", World(0, 1, torch.device("cpu")), max_steps=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_torchrun_runs_the_cli_on_two_ranks(tmp_path):
    import subprocess
    import sys

    import synthetic

    from speakup_fx.train.checkpoint import load_checkpoint

    synthetic.write_tiny_corpus(tmp_path / "corpus")
    config = tmp_path / "tiny.toml"
    config.write_text(TINY.read_text().replace("[data]", f"[data]\ndata_dir = '{tmp_path / 'corpus'}'\ncache_dir = '{tmp_path / 'cache'}'"))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(free_port()),
               "-m", "speakup_fx.cli", "train", "--config", str(config), "--run-dir", str(tmp_path / "run"), "--device", "cpu"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 6
