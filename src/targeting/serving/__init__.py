"""The served model: the MLflow pyfunc (raw contract rows in, risk and reasons out) and its entry file."""
