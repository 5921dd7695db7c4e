"""scripts/common.py: the restart that sets glibc's malloc tunables; the benchmarks' torch guard."""

import importlib.util
import os
import sys

import pytest

from scripts import common


def test_restart_sets_the_tunables_once_and_keeps_the_command(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "execv", lambda path, args: calls.append((path, args)))
    monkeypatch.setattr(sys, "orig_argv", ["python3", "-m", "scripts.train", "--config=c.py"])
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.setattr(common.platform, "libc_ver", lambda: ("glibc", "2.36"))
    common.restart_with_malloc_tunables()
    assert calls == [(sys.executable, [sys.executable, "-m", "scripts.train", "--config=c.py"])]
    assert os.environ["GLIBC_TUNABLES"] == common.GLIBC_MALLOC_TUNABLES
    common.restart_with_malloc_tunables()  # Already set (the restarted process): no loop.
    assert len(calls) == 1


@pytest.mark.parametrize("libc", [("", ""), ("musl", "1.2")])
def test_no_restart_without_glibc(monkeypatch, libc):
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("restarted"))
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.setattr(common.platform, "libc_ver", lambda: libc)
    common.restart_with_malloc_tunables()
    assert "GLIBC_TUNABLES" not in os.environ


def test_benchmarks_compare_with_torch_only_on_the_cpu_backend(monkeypatch, capsys):
    import benchmarks

    assert not benchmarks.torch_comparison(False)
    monkeypatch.setattr(benchmarks.jax, "default_backend", lambda: "gpu")
    assert not benchmarks.torch_comparison(True)
    assert "backend: gpu; the PyTorch CPU comparisons are skipped" in capsys.readouterr().out
    monkeypatch.setattr(benchmarks.jax, "default_backend", lambda: "cpu")
    monkeypatch.setattr(benchmarks.importlib.util, "find_spec", lambda name: None)
    assert not benchmarks.torch_comparison(True)
    assert "torch is not installed" in capsys.readouterr().out
    monkeypatch.undo()
    installed = importlib.util.find_spec("torch") is not None
    assert benchmarks.torch_comparison(True) == installed
