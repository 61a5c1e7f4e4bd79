"""Pure code, no database: geometry, ranking, anonymization, statuses, classes."""
