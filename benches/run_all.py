"""Runs every benchmark in benches/ (bench_*.py) and prints their tables.

The tables are also written to bench-results/<name>.md so the README's table
can be refreshed from the last run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    out_dir = HERE.parent / "bench-results"
    out_dir.mkdir(exist_ok=True)
    failed = []
    for bench in sorted(HERE.glob("bench_*.py")):
        print(f"== {bench.name}", flush=True)
        proc = subprocess.run(
            [sys.executable, str(bench), *sys.argv[1:]], capture_output=True, text=True
        )
        sys.stderr.write(proc.stderr)
        print(proc.stdout, flush=True)
        if proc.returncode != 0:
            failed.append(bench.name)
            continue
        (out_dir / f"{bench.stem}.md").write_text(proc.stdout)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
