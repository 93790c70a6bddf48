"""Simulations that run the core scheduler unchanged on a simulated clock (pure, no I/O).

`scheduling` drives `gexdaemon.core.scheduler.Scheduler` beside the baseline
policies on identical traces; `bench/sim.py` sweeps it and the tests run small cases.
"""
