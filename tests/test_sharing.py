"""Sharing through a DVC remote, end to end: `dvc push` from a project, `git clone` it, `dvc pull` only the
distilled set, the model and the test split (never the feature store), identical files; the clone then
trains and evaluates. Once with a local-directory remote, once over SSH (a loopback OpenSSH server)."""
from __future__ import annotations

import getpass
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import commit_all, make_project, run

# What a user who only trains and evaluates pulls: the distilled set and the model, plus the test split
# that evaluate reads. Not data/features.zarr, the large feature store.
PULL = ["data/distilled/all", "models/all/restorer.pt", "models/all/restorer.json", "data/index.parquet",
        "data/prepared", "data/scores.parquet", "data/subsets/all.parquet"]


def tree_hashes(root: Path, paths: list[str]) -> dict[str, str]:
    """sha256 of every file under each of `paths` (files or folders), keyed by path relative to root."""
    out = {}
    for rel in paths:
        p = root / rel
        for f in sorted([p] if p.is_file() else (x for x in p.rglob("*") if x.is_file())):
            out[f.relative_to(root).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> Path:
    """The tiny pipeline, reproduced and committed (dvc.lock included)."""
    repo = make_project(tmp_path_factory.mktemp("origin"))
    run(["dvc", "repro"], repo)
    commit_all(repo, "pipeline run")
    return repo


def round_trip(origin: Path, clone: Path, remote: str, env: dict | None = None, local_config: list[list[str]] = ()):
    """Push `origin` to `remote`, clone it, pull PULL from the remote; returns the original hashes."""
    run(["dvc", "push", "-r", remote], origin, env)
    run(["git", "clone", "-q", str(origin), str(clone)], origin.parent)
    for args in local_config:  # credentials stay in the clone's untracked .dvc/config.local
        run(["dvc", "remote", "modify", "--local", remote, *args], clone)
    assert not (clone / "data/distilled/all").exists()
    run(["dvc", "pull", "-r", remote, *PULL], clone, env)
    expected = tree_hashes(origin, PULL)
    assert tree_hashes(clone, PULL) == expected
    assert any(k.startswith("data/distilled/all/") and k.endswith("card.json") for k in expected)
    assert not (clone / "data/features.zarr").exists()
    return expected


def test_local_remote_round_trip_then_train_and_evaluate(origin, tmp_path):
    run(["dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote")], origin)
    commit_all(origin, "local remote")
    clone = tmp_path / "clone"
    round_trip(origin, clone, "shared")

    # The clone trains and evaluates from the pulled files alone: same model bytes, same metrics.
    run(["dvc", "repro", "--single-item", "--force", "train", "evaluate"], clone)
    assert not (clone / "data/features.zarr").exists()
    same = ["models/all/restorer.pt", "metrics/all/eval.json"]
    assert tree_hashes(clone, same) == tree_hashes(origin, same)
    trained = [json.loads((repo / "metrics/all/train.json").read_text()) for repo in (clone, origin)]
    for t in trained:
        t.pop("seconds")  # wall time: the one figure a rerun does not reproduce
    assert trained[0] == trained[1]
    info = run(["python", "-m", "tripled.cli", "info", "data/distilled/all"], clone)
    assert info.startswith("# Distilled set")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """An OpenSSH server on 127.0.0.1 with a throw-away host key, accepting one throw-away client key.

    Yields the port, the client key, and a HOME whose ~/.ssh/known_hosts trusts the host key (dvc-ssh,
    through asyncssh, checks host keys against it)."""
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(binary):
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server; .ci/run does)")
    pytest.importorskip("dvc_ssh", reason="dvc-ssh not installed (pip install dvc-ssh)")
    d = tmp_path_factory.mktemp("ssh")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    port = _free_port()
    (d / "sshd_config").write_text(f"""\
ListenAddress 127.0.0.1
Port {port}
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
PidFile {d}/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
""")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    log = open(d / "sshd.log", "w")
    proc = subprocess.Popen([binary, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if proc.poll() is not None:
                pytest.fail(f"sshd exited: {(d / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"sshd did not listen on port {port}: {(d / 'sshd.log').read_text()}")
        home = d / "home"
        (home / ".ssh").mkdir(parents=True)
        key_type, key = (d / "host_key.pub").read_text().split()[:2]
        (home / ".ssh/known_hosts").write_text(f"[127.0.0.1]:{port} {key_type} {key}\n")
        yield dict(port=port, key=d / "client_key", home=home, root=d)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_ssh_remote_round_trip(origin, sshd, tmp_path):
    url = f"ssh://127.0.0.1{sshd['root']}/remote"
    run(["dvc", "remote", "add", "ssh", url], origin)
    run(["dvc", "remote", "modify", "ssh", "port", str(sshd["port"])], origin)
    run(["dvc", "remote", "modify", "ssh", "user", getpass.getuser()], origin)
    run(["dvc", "remote", "modify", "--local", "ssh", "keyfile", str(sshd["key"])], origin)
    commit_all(origin, "ssh remote")
    env = dict(HOME=str(sshd["home"]))
    expected = round_trip(origin, tmp_path / "clone", "ssh", env, [["keyfile", str(sshd["key"])]])
    # The objects really went over SSH into the server-side folder.
    assert (sshd["root"] / "remote/files/md5").is_dir() and len(expected) > 10
