"""The data contract: what a declaration, an inspection and a score are, and how files become tables."""
