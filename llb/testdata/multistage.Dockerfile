FROM golang:1.21 AS build
WORKDIR /src
COPY --chown=1000:1000 --chmod=0755 main.go ./
RUN ["go", "build", "-o", "/out/app", "."]
FROM scratch
COPY --from=build /out/app /usr/bin/app
ADD https://example.com/file.tar.gz /opt/
COPY --link --from=build /src /src
EXPOSE 8080
CMD ["/usr/bin/app"]
