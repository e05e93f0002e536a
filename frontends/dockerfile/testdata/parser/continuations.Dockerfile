FROM busybox
RUN echo one \
    two \
# a comment inside the continuation
    three \
  # an indented comment
    four
RUN echo trailing-space-after-backslash \   
    works
RUN a \
\
b
RUN echo "double backslash is not a continuation" \\
RUN echo 'last line continues at EOF' \
RUN echo empty-continuation \

    continues
