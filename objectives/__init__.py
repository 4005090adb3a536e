"""Tasks that hpsearch searches over: cells, data sets, training and the capacity metric.

Importing this package never imports torch; only `objectives.training.trainer` and
`objectives.networks.cells` do.
"""
