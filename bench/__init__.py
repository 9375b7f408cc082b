"""``make bench``: measure Sala's gateway, auth and Redis on this machine.

``python -m bench`` starts the whole stack (tools.devstack) on free ports with
a throwaway data folder, pins the gateway to one CPU and the load generator to
another, runs the workloads (the cluster workload on Redis deployments of its own,
see bench/workloads/cluster.py), prints a table and writes a JSON report under
``bench/results/``. See ``python -m bench --help`` and docs/capacity.md.
"""
