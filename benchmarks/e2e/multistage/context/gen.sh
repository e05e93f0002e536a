#!/bin/sh
# gen.sh DIR FILES LINES: FILES text files of LINES lines each, from busybox awk.
set -e
mkdir -p "$1"
awk -v dir="$1" -v files="$2" -v lines="$3" 'BEGIN {
  for (i = 0; i < files; i++) {
    f = sprintf("%s/f%04d.txt", dir, i)
    for (j = 0; j < lines; j++) printf "%d %d lorem ipsum dolor sit amet %d\n", i, j, (i * 7919 + j * 104729) % 1000003 > f
    close(f)
  }
}'
