# Comment here. Should not be looking for the following parser directive.
# escape = `
FROM busybox
RUN echo backslash \
    is still the escape
