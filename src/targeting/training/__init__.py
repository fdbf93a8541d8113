"""The data scientist's workflow: time splits, training, search, and the registry (log, register, promote)."""
