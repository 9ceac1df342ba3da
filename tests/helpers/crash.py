"""Run a subprocess whose crash must explain itself. A process that dies of a signal (SIGSEGV in a
native library) leaves its Python stack on stderr (PYTHONFAULTHANDLER), which names the call but not
the library that crashed; with core files enabled for it, gdb (where installed) reads every thread's
native stack out of the core, and the failure message carries both."""

from __future__ import annotations

import glob
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

GDB_TIMEOUT_S = 120
CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")


def _enable_core_files() -> None:  # runs in the child, before exec
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


def run_explained(
    cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float, keep: Path
) -> tuple[subprocess.CompletedProcess[str], str]:
    """subprocess.run(cmd) capturing text output, with core files enabled; and, when it fails, what
    it left: its exit (the signal's name when it died of one), the tail of its stderr, and, when it
    died of a signal and left a core file, the native stack of every thread (the core is moved to
    `keep`). The report is empty when it exits 0."""
    started = time.time()
    out = subprocess.run(
        cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, preexec_fn=_enable_core_files
    )
    if out.returncode == 0:
        return out, ""
    died = f" ({signal.Signals(-out.returncode).name})" if out.returncode < 0 else ""
    report = f"exit status {out.returncode}{died}\nstderr (tail):\n{out.stderr[-4000:]}"
    if out.returncode < 0:
        report += "\n" + _native_stacks(cwd, keep, started)
    return out, report


def _native_stacks(cwd: Path, keep: Path, since: float) -> str:
    core = _find_core(cwd, since)
    if core is None:
        pattern = CORE_PATTERN.read_text().strip() if CORE_PATTERN.exists() else "?"
        return f"no core file found (kernel.core_pattern: {pattern!r})"
    kept = keep / core.name
    shutil.move(core, kept)
    gdb = shutil.which("gdb")
    if gdb is None:
        return f"core file: {kept} (install gdb for the native stacks)"
    bt = subprocess.run(
        # The crashing thread first (gdb selects it), then every thread.
        [gdb, "-batch", "-nx", "-ex", "bt 40", "-ex", "thread apply all bt 25", sys.executable, str(kept)],
        capture_output=True,
        text=True,
        timeout=GDB_TIMEOUT_S,
    )
    frames = "\n".join(line for line in bt.stdout.splitlines() if line.startswith(("#", "Thread")))
    return f"core file: {kept}\nnative stacks (gdb), the crashing thread's first:\n{frames[:12000]}"


def _find_core(cwd: Path, since: float) -> Path | None:
    """The newest core file written since `since` where kernel.core_pattern puts one (not a pipe)."""
    pattern = CORE_PATTERN.read_text().strip() if CORE_PATTERN.exists() else "core"
    if not pattern or pattern.startswith("|"):
        return None
    where = Path(pattern) if os.path.isabs(pattern) else cwd / pattern
    wildcard = str(where).split("%")[0] + "*"  # %p, %e, ... and core_uses_pid's ".<pid>"
    cores = [Path(p) for p in glob.glob(wildcard) if Path(p).is_file() and os.path.getmtime(p) >= since]
    return max(cores, key=os.path.getmtime, default=None)
