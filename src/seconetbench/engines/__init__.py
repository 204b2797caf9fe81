"""Container engines the framework starts and stops itself for a run (docs/docker.md):
``dockerd`` (one Docker engine per run prefix, inside a network namespace of that run) and
``image`` (the registry-free base image its containers use)."""
