"""Real servers for tests (nginx, SeaweedFS, olah): start one, wait until it answers, and stop it
whatever happens, with its output kept in a log file that a failure quotes."""

from __future__ import annotations

import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket() as s:
            return s.connect_ex((host, port)) == 0

    return check


@contextmanager
def daemon(args: list[str], workdir: Path, name: str, ready: Callable[[], bool], timeout: float = 30,
           env: dict | None = None):
    """Run ``args`` in ``workdir`` (output in ``workdir/<name>.log``) until ``ready()``; yields the process."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not ready():
                if proc.poll() is not None:
                    pytest.fail(f"{name} exited ({proc.returncode}): {log_path.read_text()[-800:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{name} did not start in {timeout:.0f} s: {log_path.read_text()[-800:]}")
                time.sleep(0.1)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
