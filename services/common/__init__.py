"""Code every Sala service shares, written once: settings, tokens, Redis schema, logging, health."""
