"""What a ``facevision predict`` run left in OUT, comparable across runs."""
from __future__ import annotations

import json
from pathlib import Path


def output_files(out: Path) -> dict[str, bytes]:
    """Every file under OUT by relative path (summary files left out; result.json without its timings, which
    differ from run to run)."""
    got = {}
    for p in sorted(out.rglob("*")):
        if not p.is_file() or p.name.startswith("summary"):
            continue
        data = p.read_bytes()
        if p.name == "result.json":
            r = json.loads(data)
            r.pop("timings_ms")
            data = json.dumps(r, sort_keys=True).encode()
        got[str(p.relative_to(out))] = data
    return got
