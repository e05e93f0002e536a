# leading comment
#
# comment after empty comment

FROM busybox
    # indented comment
RUN echo not # a comment
#RUN echo commented out
RUN echo "#not a comment either"
