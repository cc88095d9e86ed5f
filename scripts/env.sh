# shellcheck shell=bash
# Sourced by the project's scripts: one place for the cache locations.
# The cargo target dir lives outside the clone so CI runs and fresh clones
# reuse compiled dependencies (aws-sdk-ec2 alone takes minutes to build).
: "${XDG_CACHE_HOME:=$HOME/.cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$XDG_CACHE_HOME/image-builder-rs/target}"
export IMAGE_TESTBED_DIR="${IMAGE_TESTBED_DIR:-$XDG_CACHE_HOME/image-builder-rs/testbed}"
