"""Integrations of fastio's metrics with web frameworks."""
