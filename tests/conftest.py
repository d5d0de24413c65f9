"""Shared pytest configuration: every test folder keeps its own fixtures."""
