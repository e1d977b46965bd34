"""``facevision predict --shard K/N``: a deterministic 1/N of the inputs, and the merge of the shards' summaries.

A photo's shard is a hash of its output folder name as the whole input list names it without looking at
OUT (:func:`facevision.predict.out_folder.output_names`): the same on every machine and in every run, whatever
the order of the arguments or where the collection is mounted, so N jobs given the same paths (a SLURM
array, Kubernetes jobs, a shell loop over hosts) process every photo exactly once. Shards write disjoint
folders ``OUT/<name>/`` and their own ``OUT/summary.shard-K-of-N.json``; the shard that finds all N
summaries in OUT merges them into ``OUT/summary.json``, and ``facevision merge-shards OUT`` does the same
later (e.g. after copying the shards' OUT folders from several machines into one). The merge also lists
every other photo finished in OUT (``earlier_batch``), so summary.json stays OUT's index; a shard whose
run was interrupted is not merged until it is run again. Shards of one N may write into one OUT at the
same time (:class:`facevision.predict.lock.OutputFolderLock`); a second run of the same K/N is refused.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

__all__ = ["parse_shard", "shard_of", "shard_summary_name", "SHARD_SUMMARY", "merge_summaries",
           "merge_shard_summaries", "ShardMergeError"]

SHARD_SUMMARY = re.compile(r"^summary\.shard-(\d+)-of-(\d+)\.json$")


class ShardMergeError(ValueError):
    """The shard summaries cannot be merged (missing, unreadable, or of different N); the message says which."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (1 <= K <= N) -> (K, N); ValueError with the reason otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"--shard must look like K/N (e.g. 2/8), got {text!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= k <= n:
        raise ValueError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def shard_of(key: str, n: int) -> int:
    """Shard (1..n) of an input whose output folder name is ``key``: sha256 of the name, modulo n."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()[:8], "big") % n + 1


def shard_summary_name(k: int, n: int) -> str:
    return f"summary.shard-{k}-of-{n}.json"


def merge_summaries(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The shards' summaries of one N -> one summary (counts and faces summed, inputs concatenated in shard
    order, ``elapsed_s`` the longest shard's). Raises :class:`ShardMergeError` when shards are missing, repeated,
    of different N or interrupted."""
    if not summaries:
        raise ShardMergeError("no shard summaries to merge")
    ns = {tuple(s.get("shard", ()))[1:] for s in summaries}
    if len(ns) != 1 or not next(iter(ns)):
        raise ShardMergeError(f"shard summaries of different or unknown N: {sorted(str(n) for n in ns)}")
    n = next(iter(ns))[0]
    ks = sorted(int(s["shard"][0]) for s in summaries)
    if ks != list(range(1, n + 1)):
        missing = sorted(set(range(1, n + 1)) - set(ks))
        repeated = sorted({k for k in ks if ks.count(k) > 1})
        raise ShardMergeError(f"shards of {n}: missing {missing or 'none'}, repeated {repeated or 'none'}")
    summaries = sorted(summaries, key=lambda s: int(s["shard"][0]))
    stopped = [int(s["shard"][0]) for s in summaries if s.get("interrupted")]
    if stopped:
        raise ShardMergeError(f"shards of {n}: {stopped} were interrupted (run them again to finish them)")
    first = summaries[0]
    merged = {k: v for k, v in first.items() if k not in ("shard", "inputs", "counts", "faces", "elapsed_s",
                                                          "finished_in_out", "report", "report_error")}
    merged["counts"] = {c: sum(int(s.get("counts", {}).get(c, 0)) for s in summaries) for c in ("ok", "failed", "skipped")}
    merged["faces"] = sum(int(s.get("faces", 0)) for s in summaries)
    merged["elapsed_s"] = max(float(s.get("elapsed_s", 0.0)) for s in summaries)
    merged["shards"] = n
    merged["inputs"] = [dict(r, shard=int(s["shard"][0])) for s in summaries for r in s.get("inputs", [])]
    merged["finished_in_out"] = sum(r.get("status") == "ok" for r in merged["inputs"])
    return merged


def merge_shard_summaries(out: str | Path, n: int | None = None) -> dict[str, Any]:
    """Read ``OUT/summary.shard-K-of-N.json`` for every K (N: given, or the one the files agree on) and
    return their merge (:func:`merge_summaries`) with every other photo finished in OUT (``earlier_batch``:
    :func:`facevision.predict.outputs.finished_photos`); raises :class:`ShardMergeError` naming what is missing."""
    out = Path(out)
    found: dict[int, list[Path]] = {}
    for p in sorted(out.iterdir()) if out.is_dir() else []:
        m = SHARD_SUMMARY.match(p.name)
        if m and p.is_file():
            found.setdefault(int(m.group(2)), []).append(p)
    if n is None:
        if len(found) != 1:
            raise ShardMergeError(f"{out}: " + ("no summary.shard-K-of-N.json files" if not found else
                                                f"shard summaries of several N ({sorted(found)}); pass N"))
        n = next(iter(found))
    summaries = []
    for p in found.get(n, []):
        try:
            summaries.append(json.loads(p.read_text()))
        except (OSError, ValueError) as exc:
            raise ShardMergeError(f"{p}: cannot read ({exc})") from None
    try:
        merged = merge_summaries(summaries)
    except ShardMergeError as exc:
        raise ShardMergeError(f"{out}: {exc}") from None
    from facevision.predict.outputs import finished_photos

    listed = {r.get("output") for r in merged["inputs"]}
    earlier = [dict(r, earlier_batch=True) for r in finished_photos(out, skip=listed)]
    merged["inputs"] = earlier + merged["inputs"]
    merged["finished_in_out"] += len(earlier)
    return merged
