FROM busybox
COPY src /src
