"""sklearn-compatible feature transformers (no I/O, no MLflow); `build.build_features` assembles them."""
