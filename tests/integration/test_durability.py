"""The command journal survives a power cut, not only a crash: after it is
created and after every compaction (a rename over the old file) its
directory is fsynced, or the directory entry could come back pointing at
nothing or at the journal before compaction, and a command could run twice.
A power cut cannot be made here; the system calls can be watched: the
journal's unit tests (test_command, which creates, reopens and compacts
journals) run under strace and every journal creation and rename must be
followed by an fsync of its directory."""

import re
import shutil
import subprocess

import pytest

from conftest import build_path

CALL = re.compile(r'^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+)')


def syscalls(log):
    """[(name, args, result)] of the successful calls in an strace -f log."""
    out = []
    for line in log.splitlines():
        m = CALL.match(line)
        if m and int(m.group(3)) >= 0:
            out.append((m.group(1), m.group(2), int(m.group(3))))
    return out


def dir_fsynced_after(calls, start, directory):
    """Whether calls[start:] open `directory` and fsync that descriptor."""
    dir_fds = set()
    for name, args, result in calls[start:]:
        if name == "openat" and f'"{directory}"' in args and "O_DIRECTORY" in args:
            dir_fds.add(result)
        elif name == "fsync" and int(args) in dir_fds:
            return True
    return False


def test_journal_directory_fsynced_after_create_and_compaction(tmp_path):
    if not shutil.which("strace"):
        pytest.fail("strace is not installed (tools/setup.sh deps)")
    log = tmp_path / "strace.log"
    binary = build_path("tests/test_command")
    run = subprocess.run(["strace", "-f", "-qq", "-o", log, "-e", "trace=openat,rename,renameat,renameat2,fsync",
                          binary], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    calls = syscalls(log.read_text())
    renames = [(i, re.findall(r'"([^"]*)"', a)[-1]) for i, (n, a, _) in enumerate(calls)
               if n.startswith("rename") and "callbus-journal" in a]
    creates = [(i, re.findall(r'"([^"]*)"', a)[0]) for i, (n, a, _) in enumerate(calls)
               if n == "openat" and "callbus-journal" in a and "O_CREAT" in a and ".tmp" not in a
               and "O_APPEND" in a]
    assert renames, "no journal compaction seen: test_journal_compacts no longer compacts?"
    assert creates, "no journal opened for writing seen"
    for i, path in renames + creates:
        directory = path.rsplit("/", 1)[0] or "/"
        assert dir_fsynced_after(calls, i + 1, directory), f"{path}: its directory {directory} never fsynced after call {calls[i]}"
