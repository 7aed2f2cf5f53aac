"""The deployment examples in examples/ run: every weightsafe step they contain is executed, as
written, against the local hub replica (paths under /models are mapped into a temporary folder)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_pipelines import read_only_view

EXAMPLES = ROOT / "examples"


def shell(script: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `weightsafe` as installed
    return subprocess.run(["bash", "-ec", script], env={**env, "PATH": path}, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_the_dockerfile_bakes_a_verified_model_and_verifies_it_read_only(env, tmp_path):
    text = (EXAMPLES / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text).splitlines()
    envs = dict(re.findall(r"(\w+)=(\S+)", next(line for line in logical if line.startswith("ENV "))))
    runs = [line[4:] for line in logical if line.startswith("RUN ") and "weightsafe " in line]
    assert runs
    models = tmp_path / "models"
    for run in runs:
        script = re.sub(r"^\s*(--mount=\S+\s+)+", "", run).replace("/models", str(models))
        res = shell(script, {**env, **envs}, tmp_path)
        assert res.returncode == 0, (script, res.stdout, res.stderr)
    model = models / envs["MODEL"]
    assert (model / "config.json").is_file() and not (models / ".cache-build").exists()
    docker_run = next(line for line in text.splitlines() if "docker run" in line)
    command = docker_run.split("granite-server", 1)[1].replace("/models", str(models))
    with read_only_view(models, tmp_path / "image-layer") as ro:
        res = shell(command.replace(str(models), str(ro)), env, tmp_path)
    assert res.returncode == 0, res.stderr


def test_the_kubernetes_init_containers_fill_a_volume_the_server_reads_read_only(env, tmp_path):
    pod = yaml.safe_load((EXAMPLES / "kubernetes.yaml").read_text())
    volume = tmp_path / "volume"
    volume.mkdir()
    for container in pod["spec"]["initContainers"]:
        mount = container["volumeMounts"][0]
        command = [part.replace(mount["mountPath"], str(volume)) for part in container["command"]]
        assert command[0] == "weightsafe"
        if mount.get("readOnly"):
            with read_only_view(volume, tmp_path / f"ro-{container['name']}") as ro:
                command = [part.replace(str(volume), str(ro)) for part in command]
                res = shell(shlex.join(command), env, tmp_path)
        else:
            res = shell(shlex.join(command), env, tmp_path)
        assert res.returncode == 0, (container["name"], res.stderr)
    server = pod["spec"]["containers"][0]
    served = Path(server["args"][server["args"].index("--model") + 1].replace("/models", str(volume)))
    assert (served / "config.json").is_file() and list(served.glob("*.safetensors"))
    assert server["volumeMounts"][0]["readOnly"] is True


def test_the_github_actions_step_pulls_verifies_and_keeps_the_report(env, tmp_path):
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    job = workflow["jobs"]["weights"]
    step = next(s for s in job["steps"] if "weightsafe pull" in s.get("run", ""))
    job_env = {k: v for k, v in job["env"].items() if "${{" not in v}
    res = shell(step["run"], {**env, **job_env}, tmp_path)
    assert res.returncode == 0, (res.stdout, res.stderr)
    import json
    assert json.loads((tmp_path / "pull.json").read_text())["ok"]
    assert (tmp_path / "models" / job_env["MODEL"] / "config.json").is_file()


@pytest.mark.parametrize("script", ["ab.py", "bench.py", "hfcache.py", "mirror_bench.py", "torture.py"])
def test_every_benchmark_script_starts(script):
    """The benchmarks are not run in CI (they are measurements, not tests), but each must at least
    load: mirror_bench.py once went on importing helpers bench.py no longer had."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
