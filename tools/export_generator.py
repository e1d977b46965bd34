"""``python tools/export_generator.py RUN/last.pt OUT.safetensors``: generator weights for inference."""
from __future__ import annotations

import argparse

from facevision.model.checkpoint import read_generator_metadata
from facevision.train.checkpoint import export_generator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("state", help="training checkpoint (last.pt)")
    p.add_argument("out", help="output .safetensors")
    a = p.parse_args()
    path = export_generator(a.state, a.out)
    print(f"{path}: {read_generator_metadata(path)}")


if __name__ == "__main__":
    main()
