"""Public or national formats mapped onto the contract."""
