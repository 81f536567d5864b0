# The image Shale's Kubeflow Pipelines components run in (shale.kfp.IMAGE):
# Python 3.11, kfp, FUSE, the shale-volumes package (with the `shale`
# command), and the examples' training script.
#   docker build -f deploy/kfp.Dockerfile -t shale-python:0.1.0 .
# Tasks that mount (train_traced) need /dev/fuse and CAP_SYS_ADMIN in
# their pod, as the CSI node plugin has.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3-venv \
    && python3 -m venv /opt/build && /opt/build/bin/pip install --no-cache-dir 'maturin>=1.5,<2'
WORKDIR /src
COPY . .
RUN /opt/build/bin/maturin build --release -m crates/shale-py/Cargo.toml -o /wheels

FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends fuse3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/shale_volumes-*.whl 'kfp>=2.7' mlflow-skinny scikit-learn \
    && rm -rf /wheels
COPY examples /opt/shale/examples
ENV SHALE_EXAMPLES=/opt/shale/examples
