"""Sweeps beyond one process: launcher facts, the resumable sweeper, one GPU per parallel job.

The MLflow side of a sweep (the parent run, its close, resume look-ups) lives in `apex.tracking`.
"""
