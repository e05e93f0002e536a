FROM busybox
LABEL description="héllo wörld ✓" emoji=🚀
RUN echo "안녕하세요" > /greeting
ENV CAFÉ=crème
WORKDIR /données
