"""The workloads: each takes a Context (and a target where it applies) and returns a JSON-able dict."""
