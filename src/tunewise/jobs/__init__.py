"""The control plane's job side: the store, the scheduler (pure policy) and the executors.

The scheduler's contract (`tunewise.jobs.schedule_types`) is plain data, so the server, the
simulation benchmark and the tests all drive the same policy.
"""
