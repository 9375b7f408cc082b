"""The gateway: stateless WebSocket replicas that fan room events out over Redis pub/sub."""
