FROM busybox
ENV FOO=bar A=b
WORKDIR /app
USER nobody
RUN echo hi > /tmp/x
COPY a b ./
