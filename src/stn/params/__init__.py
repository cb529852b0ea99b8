"""The schema of params.yaml, split by who reads it.

`stn.params.run`: what one run's stages read (mnist, train, evaluate, one dataset, one
variant); `stn.params.study`: the whole file, studies and comparisons included. A stage
imports only the part it reads, so that a change to the study schema reruns no training.
This file stays empty: importing `stn.params.run` must not load the study schema.
"""
