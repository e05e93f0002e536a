FROM busybox
CMD ["echo", "exec form"]
CMD echo shell form
CMD [ "spaces" ,  "around" ]
CMD ['single', 'quotes', 'are', 'shell', 'form']
CMD ["unterminated"
ENTRYPOINT []
RUN ["sh", "-c", "echo \"quoted\" \u00e9 \n"]
SHELL ["/bin/sh", "-ec"]
VOLUME ["/data", "/logs"]
VOLUME /cache /tmp/x
COPY ["src with space", "/dst/"]
ADD ["a", "b", "/c/"]
HEALTHCHECK CMD ["curl", "-f", "http://localhost/"]
