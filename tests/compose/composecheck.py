"""composecheck.py -- build and run tests/compose's validator (main.go,
compose-go) from Python: the resolved project the compose checks and the
real-deployment test start from.

  build(out)                      -> out, rebuilt when the Go sources change
  load(binary, compose, env_files) -> (project dict, None) or (None, complaint)
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

SRC = Path(__file__).resolve().parent


def go_binary():
    for cand in ("/usr/local/go/bin/go", shutil.which("go")):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise RuntimeError("no Go toolchain (tools/setup.sh deps installs one)")


def build(out):
    """The validator built into out (offline: setup.sh fetched the modules)."""
    out = Path(out)
    srcs = [p for p in SRC.iterdir() if p.suffix == ".go" or p.name in ("go.mod", "go.sum")]
    if not out.exists() or any(p.stat().st_mtime > out.stat().st_mtime for p in srcs):
        out.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GOPROXY="off", GOTOOLCHAIN="local", GOFLAGS="-mod=readonly -buildvcs=false")
        r = subprocess.run([go_binary(), "build", "-o", str(out), "."], cwd=SRC, env=env,
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError("building tests/compose failed (run tools/setup.sh deps to fetch its "
                               f"modules):\n{r.stderr}")
    return out


def load(binary, compose_file, env_files):
    args = [str(binary)]
    for f in env_files:
        args += ["-env-file", str(f)]
    r = subprocess.run(args + [str(compose_file)], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return json.loads(r.stdout), None
