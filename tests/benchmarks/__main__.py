"""`make bench`: the benchmarks, printed as a table and written to bench-results/.

Only the export figures exist so far; the relay benchmark of issue #8 joins them here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from tests.benchmarks import export  # noqa: E402

RESULTS = Path(__file__).resolve().parents[2] / "bench-results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller data, under a minute")
    quick = parser.parse_args().quick
    call_command("migrate", verbosity=0)  # a throw-away database in the test data directory
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    figures = {"export": export.run(quick=quick)}
    report = {
        "commit": commit,
        "cores": os.cpu_count(),
        "quick": quick,
        "measured_at": datetime.now(UTC).isoformat(),
        "figures": figures,
    }
    width = max(len(name) for group in figures.values() for name in group)
    print(f"commit {commit} · {os.cpu_count()} cores · {'quick' if quick else 'full'}")
    for group, values in figures.items():
        print(f"\n{group}")
        for name, value in values.items():
            print(f"  {name:<{width}}  {value}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bench-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
