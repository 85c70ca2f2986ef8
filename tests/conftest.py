"""Shared pytest configuration: tests import the installed package, ``synthetic`` signals and ``stage_doubles``;
``corpus`` is a tiny data folder in the shared layout (``synthetic.write_tiny_corpus``).

Torch runs on one intra-op thread for the whole session (restored at the end): results then do not
depend on the machine's core count, and a loaded machine does not make threads spin against each other.
"""

import pytest
import synthetic


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    synthetic.write_tiny_corpus(folder)
    return folder
