"""Tasks that hpsearch searches over: cells, data sets, training and the capacity metric.

Importing this package never imports torch; only the trainers (objectives/training/), the
cells (`objectives.networks.cells`) and the tasks' objectives (objectives/tasks/*/objective.py)
do.
"""
