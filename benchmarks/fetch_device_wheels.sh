#!/usr/bin/env bash
# Download the wheels that the GPU benchmark machine's Python 3.12 image lacks into .whl/
# (ignored by git). On that machine: pip install --no-index --no-deps --target /tmp/site .whl/*.whl
# wandb is pinned to 0.19 with protobuf 5 because sae_lens imports wandb at import time and
# newer wandb pulls in opentelemetry; nothing in this toolkit logs to wandb.
set -euo pipefail
cd "$(dirname "$0")/.."
platforms=(manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)
args=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .whl)
for p in "${platforms[@]}"; do args+=(--platform "$p"); done
python3 -m pip download -q "${args[@]}" \
  transformer_lens==3.9.0 sae_lens==6.54.12 better-abc beartype "typeguard<5" fancy-einsum \
  datasets dill multiprocess simple-parsing docstring-parser wandb==0.19.11 protobuf==5.29.5 \
  sentry-sdk gitpython gitdb smmap setproctitle docker-pycreds pydantic pydantic-core \
  annotated-types typing-inspection typing-extensions platformdirs
