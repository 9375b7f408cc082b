"""The auth service: accounts, sessions and access tokens."""
