FROM busybox AS base
MAINTAINER Jane Doe <jane@example.com>
EXPOSE 80 443/tcp 53/udp
EXPOSE ${PORT:-8080}
WORKDIR /app
WORKDIR sub dir
USER nobody
USER 1000:1000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD wget -qO- http://localhost/ || exit 1
HEALTHCHECK NONE
ONBUILD RUN echo triggered
ONBUILD COPY . /app/src
ONBUILD ["json", "is", "ignored?"]
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
