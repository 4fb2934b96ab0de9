"""Contracts, FX, budgets, alerts and quota, notification channels, bills."""
