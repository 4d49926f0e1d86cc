"""Assistants that read the call as it happens (transcripts on the bus) and publish what helps the operator."""
