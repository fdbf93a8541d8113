"""The served model: the MLflow pyfunc (raw contract rows in, risk and reasons out) and its entry file."""


def __getattr__(name: str) -> object:
    """`TargetingPyfunc`, for models logged before this package existed: their entry file imports it from
    here (`from targeting.serving import TargetingPyfunc`). Looked up on use, so importing the package
    imports nothing."""
    if name == "TargetingPyfunc":
        from targeting.serving.pyfunc import TargetingPyfunc

        return TargetingPyfunc
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
