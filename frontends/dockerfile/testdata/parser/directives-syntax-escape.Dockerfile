# syntax = docker/dockerfile:1
#ESCAPE=`

FROM busybox
RUN echo `
    continued with backtick
COPY a\b c\d
