"""debian_packages.py -- which Debian packages the callbus programs need,
from this machine: the -l flags of every link line `make all` runs (a dry
run of the Makefile), the library the linker would take for each and the
-dev package that owns it, the NEEDED libraries of the built programs and
their runtime packages (readelf, ldconfig, dpkg -S), and the run-time
plugins tools/setup.sh installs. Meaningful where the image's Debian
release is this machine's.
"""

import os
import re
import subprocess
from pathlib import Path


class PackageInfo:
    """The Debian packages behind the Makefile's -l flags and the programs'
    NEEDED libraries, from this machine's linker and dpkg database."""

    def __init__(self, repo, cc="cc"):
        self.repo = Path(repo)
        self.cc = cc
        self._dpkg = {}
        self._flags = None
        self._needed = {}

    def link_flags(self):
        """{program: [-l flags]} of every link line `make all` runs, from a
        dry run of the Makefile itself (so per-program additions count)."""
        import tempfile
        if self._flags is not None:
            return self._flags
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run(["make", "-n", "-B", "--no-print-directory", "all", f"BUILD={tmp}"],
                               capture_output=True, text=True, cwd=self.repo, check=True)
            out = {}
            for line in r.stdout.splitlines():
                m = re.search(r"\s-o\s+" + re.escape(tmp) + r"/([^/\s]+)\s", line + " ")
                if m:
                    out[m.group(1)] = [w for w in line.split() if w.startswith("-l")]
        self._flags = out
        return out

    def runtime_plugins(self):
        """Libraries tools/setup.sh installs as such (lib*, not -dev): loaded
        at run time (dlopen), so no NEEDED entry shows them."""
        text = (self.repo / "tools" / "setup.sh").read_text()
        m = re.search(r"^APT_PKGS=\((.*?)^\)", text, re.S | re.M)
        words = re.sub(r"#[^\n]*", "", m.group(1)).split() if m else []
        return sorted(w for w in words if w.startswith("lib") and not w.endswith("-dev"))

    def owner(self, path):
        if path not in self._dpkg:
            pkg = None
            for p in (path, os.path.realpath(path)):
                r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
                if r.returncode == 0:
                    pkg = r.stdout.split(":", 1)[0].split(",")[0].strip()
                    break
            self._dpkg[path] = pkg
        return self._dpkg[path]

    def link_packages(self):
        out = []
        flags = []
        for prog_flags in self.link_flags().values():
            flags += [f for f in prog_flags if f not in flags]
        for flag in flags:
            lib = "lib" + flag[2:]
            f = None
            for ext in (".so", ".a"):
                r = subprocess.run([self.cc, f"-print-file-name={lib}{ext}"], capture_output=True, text=True)
                cand = r.stdout.strip()
                if os.path.isabs(cand) and os.path.exists(cand):
                    f = os.path.normpath(cand)
                    break
            out.append((flag, self.owner(f) if f else None))
        return out

    def runtime_packages(self, binary):
        key = str(binary)
        if key not in self._needed:
            self._needed[key] = self._runtime_packages(binary)
        return self._needed[key]

    def _runtime_packages(self, binary):
        r = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True, check=True)
        sonames = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)
        cache = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
        out = []
        for so in sonames:
            m = re.search(r"^\s*" + re.escape(so) + r" \(([^)]*)\) => (\S+)$", cache, re.M)
            path = m.group(2) if m else None
            out.append((so, self.owner(path) if path else None))
        return out
