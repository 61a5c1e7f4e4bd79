"""Persistence: engine and sessions, tables, and one module of queries per aggregate."""
