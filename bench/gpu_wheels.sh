#!/usr/bin/env bash
# Wheels that the lent GPU machine (Python 3.12, no package index) lacks, into .whl/ of the repo root:
# what tripled imports (zarr, pydantic) and what stages/train.py's dvclive imports (dvc, without its CLI's
# extras). Each is named with its version (--no-deps fetches none of their needs); the machine has
# the rest (torch, timm, numpy, pandas, pyarrow, click, psutil, requests, ...). See docs/gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF /.whl/ .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
WHEELS=(
  zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
  pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2
  dvclive==3.49.1 dvc==3.67.1 dvc-data==3.18.3 dvc-objects==5.2.0 dvc-http==2.32.0 dvc-render==1.0.2
  dvc-studio-client==0.23.0 scmrepo==3.6.2 sqltrie==0.11.3 dulwich==1.2.21 funcy==2.1 flatten-dict==0.5.0
  ruamel.yaml==0.19.1 voluptuous==0.16.0 atpublic==9.0.0 diskcache==5.6.3 dpath==2.2.0 flufl.lock==9.2.0
  orjson==3.11.5 pygtrie==2.6.2 wcwidth==0.7.0 zc.lockfile==4.0
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
du -sh .whl
