#!/bin/sh
# A script the `script` module copies and runs.
echo "script args: $*"
echo "to stderr" >&2
