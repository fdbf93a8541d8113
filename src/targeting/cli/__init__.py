"""The `targeting` command: options -> config -> one library call; domain errors exit 1 with one line.

Each module of this package holds the commands of one kind of user; they are registered here.
"""

from __future__ import annotations

import typer

from targeting.cli import daily, data, evaluate, serving, training

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
app.add_typer(evaluate_app, name="evaluate")


def main() -> None:
    """The console entry (`targeting`, `python -m targeting`)."""
    app(prog_name="targeting")
