# syntax=docker/dockerfile:1
FROM alpine:3.18 AS base
RUN --mount=type=cache,target=/root/.cache,id=gocache,sharing=locked \
    --mount=type=tmpfs,target=/scratch \
    --mount=type=secret,id=token,target=/run/secrets/token,mode=0440,uid=10,gid=20,required=true \
    --mount=type=ssh,id=default \
    --mount=type=bind,source=go.mod,target=/src/go.mod \
    --network=none \
    make build
FROM base AS second
RUN --mount=type=bind,from=base,source=/etc,target=/hostetc,rw ls /hostetc
