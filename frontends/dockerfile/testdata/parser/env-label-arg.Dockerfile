# NAME the name to greet
ARG NAME=world
FROM busybox
ENV LEGACY value with  spaces
ENV A=1 B="two words" C=three\ words D= E=$A
ENV QUOTES='single $A' DQ="double $A"
LABEL org.opencontainers.image.title="demo" \
      org.opencontainers.image.version=1.0 \
      "key with space"="value"
LABEL legacy-label some value
ARG NAME
ARG FIRST SECOND=2 THIRD="3 3"
RUN echo "hello $NAME"
