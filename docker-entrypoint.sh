#!/bin/sh
# No arguments: run the whole study (the DVC pipeline) in the mounted project.
# Flags (--layer=coordconv --epochs=50 ...): train and test one model, as the original study did.
set -e
if [ "$#" -eq 0 ]; then
    exec dvc repro
fi
case "$1" in
    -*) exec stn "$@" ;;
    *) exec "$@" ;;
esac
