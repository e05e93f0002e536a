#!/bin/sh
echo "$1 from a Kiln build on $(uname -m)"
