"""Time architecture detection for a state_dict given without --arch.

Prints: building the key/shape signatures of every torchvision classification model on the meta
device (cold, no disk cache), detection with nothing cached (one model per family built),
reading them back from the disk cache, one detection, and for
comparison building a few of the models for real on CPU.

    python bench/bench_arch_detect.py
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings

import torch
import torchvision.models as tvm

from conceptkit.dissection.models import architecture as A


def main() -> None:
    warnings.filterwarnings("ignore")
    state = tvm.resnet18(num_classes=365).state_dict()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CONCEPTKIT_CACHE"] = cache
        A._SIG_MEMO.clear()
        t0 = time.perf_counter()
        found = A.detect_arch(state)
        first = time.perf_counter() - t0
        print(f"detect_arch(resnet18, 365 classes), nothing cached: {first:.2f} s -> {found}")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CONCEPTKIT_CACHE"] = cache
        A._SIG_MEMO.clear()
        t0 = time.perf_counter()
        sigs = A.signatures(A.classification_names())
        cold = time.perf_counter() - t0
        A._SIG_MEMO.clear()
        A._DISK_READ.clear()
        t0 = time.perf_counter()
        A.signatures(A.classification_names())
        disk = time.perf_counter() - t0
        t0 = time.perf_counter()
        found = A.detect_arch(state)
        detect = time.perf_counter() - t0
    print(f"signatures of {len(sigs)} architectures on meta (cold): {cold:.2f} s")
    print(f"signatures from the disk cache: {disk:.3f} s")
    print(
        f"detect_arch(resnet18, 365 classes) with signatures in memory: {detect:.3f} s -> {found}"
    )
    for name in ("resnet18", "resnet50", "vgg16", "efficientnet_b7"):
        t0 = time.perf_counter()
        tvm.get_model(name, weights=None)
        cpu = time.perf_counter() - t0
        t0 = time.perf_counter()
        A.meta_model(name)
        meta = time.perf_counter() - t0
        print(f"{name}: CPU build {cpu:.2f} s, meta build {meta:.3f} s")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
