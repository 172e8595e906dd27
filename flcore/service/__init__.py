"""The service that runs runs: the scheduler and its worker processes, executing one run,
checkpoints, runs on a Ray cluster, warm workers, the CPU budget, quotas and sweeps."""
