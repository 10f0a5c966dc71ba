"""The worker process: RQ worker class, execution hooks, reconciler, supervisor."""
