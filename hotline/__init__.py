"""The composition root: wires the packages into the gateway (settings, CLI, serve, demo). Nothing imports it."""
