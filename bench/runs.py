"""What the benchmarks share for their measured runs: each in a fresh child process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_child(cmd: list[str], what: str) -> dict[str, Any]:
    """Run ``cmd`` from the repository root; return the JSON of its last line of output.

    A failed child's stderr tail is printed and the benchmark stops with ``what failed``.
    """
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{what} failed (exit {done.returncode})")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))
