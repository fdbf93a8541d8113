"""The `targeting` command: options -> config -> one library call; domain errors exit 1 with one line.

Each module of this package holds the commands of one kind of user; they are registered here.
"""

from __future__ import annotations

import typer

from targeting.cli import daily, data, evaluate, history, serving, training

app = typer.Typer(
    name="targeting",
    help="Machine-learning shipment targeting for customs: validate, simulate, train, score, explain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(data.validate)
app.command("import-kcs")(data.import_kcs)
app.command()(data.simulate)
app.command("world-stats")(data.world_stats)
app.command("history-index")(data.history_index)
app.command()(training.train)
app.command()(training.promote)
app.command()(daily.score)
app.command()(daily.report)
app.command()(serving.serve)

evaluate_app = typer.Typer(help="Evaluation protocols of evaluation.md (print a table, log to MLflow).",
                           no_args_is_help=True)  # fmt: skip
evaluate_app.command("kcs")(evaluate.kcs)
evaluate_app.command("world")(evaluate.world)
app.command()(evaluate.backtest)
app.command()(evaluate.monitor)
app.add_typer(evaluate_app, name="evaluate")

history_app = typer.Typer(help="The history: add a day, migrate a single-file history, index it, save its state for Spark.", no_args_is_help=True)
history_app.command("add")(history.add)
history_app.command("migrate")(history.migrate)
history_app.command("index")(data.history_index)
history_app.command("state")(history.state)
app.add_typer(history_app, name="history")
app.command()(history.examine)


def main() -> None:
    """The console entry (`targeting`, `python -m targeting`): a usage error (a missing argument, an option
    value of the wrong kind, an unknown command) is one red line and exit 1, as every other error."""
    from typer.exceptions import Abort, TyperException

    from targeting.cli.common import console

    try:
        code = app(prog_name="targeting", standalone_mode=False)
    except Abort:
        console.print("[bold red]error:[/] aborted", highlight=False)
        raise SystemExit(1) from None
    except TyperException as exc:  # a usage error: Typer's parser says what was wrong with the command line
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if not message:  # a group called without a command: its help was shown
            raise SystemExit(0) from None
        console.print(f"[bold red]error:[/] {message}{where}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    raise SystemExit(code if isinstance(code, int) else 0)
