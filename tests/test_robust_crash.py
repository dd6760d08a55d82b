"""kill -9 in the middle of train and of writing a distilled set, then rerun."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tests.helpers import read_curve, write_distilled
from tripled.data.distilled import DistilledSet
from tripled.errors import StoreError

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
TRAIN = dict(steps=60, batch_size=4, crop=24, lr=2e-3, log_every=5, checkpoint_every=10, device="cpu", seed=3)
MODEL = dict(arch="nafnet", kwargs=dict(width=8, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]))


def _wait_for(cond, proc, timeout=120.0):
    end = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def _train(params, data, out, **popen):
    cmd = [sys.executable, str(REPO / "stages" / "train.py"), "--params", str(params), "--data", str(data),
           "--out", str(out / "models"), "--metrics", str(out / "metrics")]
    return subprocess.Popen(cmd, env=ENV, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def test_train_killed_resumes_to_the_same_result(tmp_path):
    data = write_distilled(tmp_path / "distilled", n=8, size=32)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(dict(model=MODEL, train=TRAIN)))
    ref, run = tmp_path / "ref", tmp_path / "run"
    ref.mkdir()
    run.mkdir()

    proc = _train(params, data, ref)
    assert proc.wait(300) == 0, proc.stdout.read()

    proc = _train(params, data, run)
    checkpoint = run / "models" / "checkpoints" / "last.pt"
    loss_log = run / "metrics" / "dvclive" / "plots" / "metrics" / "loss.tsv"

    def logged() -> list[int]:
        try:  # read while the run appends to it: a file or a row may be half written
            return pd.read_csv(loss_log, sep="\t")["step"].dropna().astype(int).tolist()
        except (FileNotFoundError, pd.errors.EmptyDataError, pd.errors.ParserError, KeyError, ValueError):
            return []

    _wait_for(lambda: len(logged()) >= 1, proc)
    first = len(logged())
    _wait_for(lambda: len(logged()) > first, proc)  # the log grows while the run trains
    # kill once the log holds steps the checkpoint does not: the resumed run must not log them twice
    _wait_for(lambda: checkpoint.is_file() and len(logged()) * TRAIN["log_every"] > TRAIN["checkpoint_every"], proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL
    # nothing reads as finished: no model, no metrics; the checkpoint loads whole
    assert not (run / "models" / "restorer.pt").exists()
    assert not (run / "metrics" / "train.json").exists()
    killed_at = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < killed_at < TRAIN["steps"]

    proc = _train(params, data, run)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "resumed from" in out
    resumed_at = int(out.split("resumed from")[1].split("at step")[1].split()[0])
    assert resumed_at >= killed_at

    curve, ref_curve = read_curve(run / "metrics"), read_curve(ref / "metrics")
    assert logged() == list(range(TRAIN["log_every"], TRAIN["steps"] + 1, TRAIN["log_every"]))  # each step once
    assert len(curve) == TRAIN["steps"] // TRAIN["log_every"]
    pd.testing.assert_frame_equal(curve, ref_curve, check_exact=True)  # also the losses after the checkpoint
    assert (curve.step > resumed_at).sum() > 0
    a = torch.load(run / "models" / "restorer.pt", weights_only=True)
    b = torch.load(ref / "models" / "restorer.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from tripled.data.distilled import DistilledWriter

    writer = DistilledWriter(sys.argv[1], dict(run="second"))
    rng = np.random.default_rng(0)
    for i in range(int(sys.argv[2])):
        img = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        writer.add(dict(id=str(i), task="t", stage=1, weight=1.0), img, img)
        if i == 5:
            print("writing", flush=True)
    writer.close()
""")


def _writer(folder, n):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(n)], env=ENV, stdout=subprocess.PIPE,
                            text=True)


def _kill_while_writing(folder):
    proc = _writer(folder, 5000)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL


def test_distilled_set_killed_while_written_never_reads_as_complete(tmp_path):
    folder = tmp_path / "distilled"
    _kill_while_writing(folder)
    with pytest.raises(StoreError, match="not a complete distilled set"):
        DistilledSet(folder)
    # a rerun writes the set whole, as a run that was never interrupted does
    assert _writer(folder, 8).wait(120) == 0
    assert _writer(tmp_path / "clean_run", 8).wait(120) == 0
    ds, ref = DistilledSet(folder), DistilledSet(tmp_path / "clean_run")
    pd.testing.assert_frame_equal(ds.manifest, ref.manifest)
    assert all(np.array_equal(a, b) for i in range(len(ds)) for a, b in zip(ds.pair(i), ref.pair(i)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean_run", "distilled"]  # no partial folder left


def test_killed_rewrite_keeps_the_previous_set(tmp_path):
    folder = write_distilled(tmp_path / "distilled", n=4)
    before = DistilledSet(folder)
    _kill_while_writing(folder)
    after = DistilledSet(folder)
    assert after.attrs == {"toy": True}
    pd.testing.assert_frame_equal(after.manifest, before.manifest)
    assert all(np.array_equal(a, b) for i in range(len(after)) for a, b in zip(after.pair(i), before.pair(i)))
