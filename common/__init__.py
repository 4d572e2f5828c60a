"""Helpers that both Python services use: settings parsing, the TDengine DSN, logging, backoff."""
