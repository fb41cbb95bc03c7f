"""Orchestration of one job: the recipe (stages called in order), the job's records, stop points, progress and the
printed summary. The only layer that calls every stage; the stages know nothing of it."""
