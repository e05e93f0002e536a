	from   busybox	as   Lower-Case.Stage_1
  run		echo   tabs	and   spaces
Run echo Mixed
RUN      --mount=type=cache,target=/x     echo flags with extra spaces
env K=V
copy a b
