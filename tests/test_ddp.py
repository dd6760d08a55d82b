"""torchrun with 2 CPU processes (gloo): DDP training through the train stage."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.helpers import read_curve, write_distilled
from tripled.data.distilled import DistilledSet
from tripled.training.archs import build_model
from tripled.training.loop import train
from tripled.training.params import ModelParams, TrainParams

ROOT = Path(__file__).resolve().parents[1]
MODEL = dict(arch="nafnet", kwargs=dict(width=8, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]))
TRAIN = dict(steps=24, batch_size=8, crop=24, lr=2e-3, log_every=4, checkpoint_every=10, stage1_fraction=0.5,
             device="cpu")


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_torchrun_two_processes_train_like_one(tmp_path):
    data = write_distilled(tmp_path / "d")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(dict(model=MODEL, train=TRAIN)))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "stages/train.py"), "--params", str(params), "--data", str(data), "--out", str(tmp_path / "m"),
           "--metrics", str(tmp_path / "metrics")]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    curve = read_curve(tmp_path / "metrics")
    assert curve["loss"].iloc[-1] < curve["loss"].iloc[0]
    assert curve["stage"].tolist() == [1, 1, 1, 2, 2, 2]  # both ranks switched at step 12, or DDP would hang
    assert (tmp_path / "m/checkpoints/last.pt").is_file()

    # The checkpoint is the plain (unwrapped) state dict: it loads in a single process.
    config = json.loads((tmp_path / "m/restorer.json").read_text())
    model = build_model(config["arch"], **config["kwargs"])
    model.load_state_dict(torch.load(tmp_path / "m/restorer.pt", weights_only=True))

    # Two halves of each batch with averaged gradients train like the whole batch in one process.
    single, single_curve = train(DistilledSet(data), ModelParams(**MODEL), TrainParams(**TRAIN), tmp_path / "ck.pt",
                                 "single")
    assert [c["stage"] for c in single_curve] == curve["stage"].tolist()
    np.testing.assert_allclose(curve["loss"], [c["loss"] for c in single_curve], rtol=1e-3)
    for a, b in zip(model.state_dict().values(), single.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-3)
