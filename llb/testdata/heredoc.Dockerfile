# syntax=docker/dockerfile:1
FROM debian:bookworm
RUN <<EOT
set -e
apt-get update
EOT
RUN <<EOT bash
#!/usr/bin/env bash
echo from script
EOT
COPY <<EOF /etc/app.conf
key=value
EOF
WORKDIR rel/dir
RUN --mount=type=cache,target=/var/cache/apt echo done
