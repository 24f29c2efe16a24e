"""podman.py -- running containers in the integration tests with podman,
on a machine like the project's (compose/podman/containers.conf says why
each setting is needed there). Shared by test_compose_run.py and
test_install.py.

  podman(*args, timeout=120, check=True) -> CompletedProcess
  podman_env()                           the environment podman runs with
  podman_problem()                       None where podman can run containers here, else why
  skip_unless_podman(who, problem, say)  skip the test, saying why, when problem is not None
  debian_base_image()                    the Debian 12 base image, made by
                                         compose/podman/debian-image.sh unless podman has it
"""

import os
import shutil
import subprocess

from conftest import ROOT

CONTAINERS_CONF = ROOT / "compose" / "podman" / "containers.conf"


def podman_env():
    return dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF))


def podman(*args, timeout=120, check=True):
    r = subprocess.run(["podman", *map(str, args)], env=podman_env(), capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"podman {' '.join(map(str, args))}: exit {r.returncode}\n{r.stderr[-3000:]}")
    return r


def podman_problem():
    """None where podman can run containers here, else the reason."""
    if not shutil.which("podman"):
        return "podman is not installed (tools/setup.sh deps installs it on Debian)"
    r = podman("info", timeout=60, check=False)
    if r.returncode != 0:
        return f"podman info fails here: {r.stderr.strip()[-500:]}"
    return None


def skip_unless_podman(who, problem, say=print):
    """Skips (with the reason on the terminal) where podman cannot run."""
    import pytest
    if problem:
        say(f"{who}: SKIPPED: {problem}")
        pytest.skip(problem)


def debian_base_image():
    """Makes docker.io/library/debian:bookworm(-slim) when podman lacks it;
    returns what debian-image.sh said (empty when it had nothing to do)."""
    r = subprocess.run([str(ROOT / "compose" / "podman" / "debian-image.sh")], env=podman_env(),
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"debian-image.sh failed:\n{r.stderr[-3000:]}")
    return r.stderr.strip()
