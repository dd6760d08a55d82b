"""Extraction on Ray: Ray Data batch inference, thumbnails decoded in read tasks, embedded by an actor pool.

Connects to RAY_ADDRESS when set, else starts a local cluster. The driver receives the embeddings and
is the only writer of the cache and of the store, so every file has one writer. Decoding runs on the
workers, so image paths must be readable there (a shared filesystem on a multi-node cluster).
"""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import ray
import torch

from tripled.device import use_bf16
from tripled.features.backbone import Backbone, embed_thumbs
from tripled.features.batches import Batch
from tripled.features.decode import Rows, Spec, default_workers, thumb_batch
from tripled.features.params import FeatureParams

ACTOR_CPUS = 0.5  # a CPU actor leaves most of a core to the read tasks that feed it (else the pipeline stalls)


def connect(p: FeatureParams) -> None:
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        ray.init(num_cpus=default_workers(p.workers), include_dashboard=False, log_to_driver=False)


def ray_device(p: FeatureParams) -> torch.device:
    """cuda when the cluster has GPUs (the actors then run there), unless params say cpu."""
    connect(p)
    gpus = ray.cluster_resources().get("GPU", 0)
    if p.device == "cuda" and not gpus:
        raise RuntimeError("features.device: cuda requested but the Ray cluster has no GPU")
    return torch.device("cuda" if gpus and p.device != "cpu" else "cpu")


def _decode(item: dict, size: int) -> dict:
    batch = [Spec(path, tuple(box), bool(whole)) for path, box, whole in zip(item["path"], item["box"], item["whole"])]
    return {"i": item["i"], "thumbs": thumb_batch(batch, size)}


class _Embedder:
    def __init__(self, backbone: Backbone, device: str, precision: str):
        self.device = torch.device(device)
        self.bf16 = use_bf16(precision, self.device)
        self.backbone = backbone
        backbone.model.to(self.device).eval()

    def __call__(self, batch: dict) -> dict:
        # one Ray row = one planned Batch, so batches hold the same rows as under the local engine
        return {"i": batch["i"], "emb": embed_thumbs(self.backbone, batch["thumbs"][0], self.device, self.bf16)[None]}


def embed_ray(batches: list[Batch], rows: Rows, backbone: Backbone, p: FeatureParams, device: torch.device,
              emit: Callable[[Batch, np.ndarray], None]) -> None:
    if not batches:
        return
    connect(p)
    ray.data.DataContext.get_current().enable_progress_bars = False
    items = [dict(i=i, path=rows.path[b.rows].tolist(), box=rows.box[b.rows].tolist(),
                  whole=rows.whole[b.rows].tolist()) for i, b in enumerate(batches)]
    gpu = device.type == "cuda"
    actors = p.actors or (int(ray.cluster_resources().get("GPU", 1)) if gpu else 1)
    ds = ray.data.from_items(items).map(_decode, fn_kwargs=dict(size=p.thumb_size))
    ds = ds.map_batches(_Embedder, batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors),
                        fn_constructor_kwargs=dict(backbone=backbone, device=device.type, precision=p.precision),
                        num_gpus=1 if gpu else 0, num_cpus=1 if gpu else ACTOR_CPUS)
    for row in ds.iter_rows():
        emit(batches[int(row["i"])], np.asarray(row["emb"]))
