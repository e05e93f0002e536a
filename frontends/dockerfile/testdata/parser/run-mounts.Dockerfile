FROM alpine
RUN --mount=type=bind,source=.,target=/src,rw make -C /src
RUN --mount=type=bind,from=builder,src=/out,dst=/in ls /in
RUN --mount=type=cache,id=apk,target=/var/cache/apk,sharing=locked apk add git
RUN --mount=type=cache,target=/root/.cache,mode=0700,uid=1000,gid=1000 true
RUN --mount=type=tmpfs,target=/tmp,size=64m ls /tmp
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc,required=true npm ci
RUN --mount=type=secret,id=token,required cat /run/secrets/token
RUN --mount=type=ssh git clone git@github.com:moby/buildkit.git
RUN --mount=type=ssh,id=default,required=false true
RUN --network=none --mount=type=cache,target=/x echo offline
RUN --network=host curl http://localhost
RUN --mount="type=bind,target=/a,source=with space" true
