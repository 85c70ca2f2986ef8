"""DDP on CPU (gloo, 2 real processes): averaged gradients equal one process on the same global batch."""

import os
import socket
from dataclasses import replace
from pathlib import Path

import torch
import torch.multiprocessing as mp

from speakup_fx.train.config import load_config
from speakup_fx.train.distributed import World, init_from_env, shutdown, unwrap
from speakup_fx.train.loop import build_state, train_step

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"


def global_batch():
    gen = torch.Generator().manual_seed(3)
    target = 0.3 * torch.randn(4, 1, 1600, generator=gen)
    return target + 0.1 * torch.randn(4, 1, 1600, generator=gen), target


def tiny_config():
    config = load_config(TINY)
    return replace(config, batch_size=4, optim=replace(config.optim, grad_clip=1e9))


def gradients(state):
    return {n: p.grad.clone() for n, p in unwrap(state.generator).named_parameters()}


def worker(rank, port, out_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    world = init_from_env("cpu")
    state = build_state(tiny_config(), world)
    noisy, target = global_batch()
    train_step(state, noisy[2 * rank : 2 * rank + 2], target[2 * rank : 2 * rank + 2])
    torch.save({"grads": gradients(state), "params": unwrap(state.generator).state_dict()}, Path(out_dir) / f"rank{rank}.pt")
    shutdown(world)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gradients_equal_one_process_on_the_global_batch(tmp_path):
    mp.start_processes(worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    single = build_state(tiny_config(), World(0, 1, torch.device("cpu")))
    train_step(single, *global_batch())
    expected = gradients(single)
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for name, grad in expected.items():
            torch.testing.assert_close(result["grads"][name], grad, atol=1e-6, rtol=1e-4, msg=name)
        for name, value in single.generator.state_dict().items():
            torch.testing.assert_close(result["params"][name], value, atol=1e-6, rtol=1e-4, msg=name)


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
