"""One check as a pipeline of stages (see `pipeline.py`): targets, fetch, evaluate, group, inhibit, deliver, after."""
