"""`sweep delete ID` and `sweep resume ID`: remove a sweep, or undo `sweep stop`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from cli.common import HomeOption, JsonOption, StoreOption, cli_errors, console, errors, open_store_for
from cli.polish import plural


def delete(
    sweep_id: Annotated[str, typer.Argument(metavar="ID", help="Sweep id from `sweep create` or `sweep ls`.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
    store_url: StoreOption = None,
) -> None:
    """Delete a sweep: its runs' rows and its artifact folder (checkpoints, logs), nothing else. Asks first."""
    from agent.sweep_admin import delete_sweep, plan_delete

    with cli_errors():
        store = open_store_for(store_url, home)
        plan = plan_delete(store, sweep_id)
        if not yes:
            if as_json:
                errors.print("[red]error:[/red] --json needs --yes (a script cannot answer the question)",
                             highlight=False)
                raise typer.Exit(2)
            states = ", ".join(f"{n} {state}" for state, n in sorted(plan.runs_by_state.items()))
            what = plural(plan.runs, "run") + (f" ({states})" if states else "")
            where = f" and {plan.artifacts}" if plan.artifacts else ""
            name = f" ({plan.name})" if plan.name else ""
            console.print(f"sweep {escape(plan.id)}{escape(name)}: {what}; removes its rows{escape(where)}",
                          highlight=False, soft_wrap=True)
            if not typer.confirm(f"Delete sweep {plan.id}?", default=False):
                console.print("nothing deleted", highlight=False)
                raise typer.Exit(1)
        result = delete_sweep(store, plan)
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    console.print(f"deleted sweep {escape(result.id)}: {plural(result.deleted_runs, 'run')}"
                  + (f", {escape(result.artifacts_removed)}" if result.artifacts_removed else ""), highlight=False,
                  soft_wrap=True)
    if result.leftover:
        errors.print(f"[yellow]warning:[/yellow] could not remove {escape(result.leftover)}; delete it by hand",
                     highlight=False, soft_wrap=True)


def resume(
    sweep_id: Annotated[str, typer.Argument(metavar="ID", help="A sweep stopped with `sweep stop`.")],
    as_json: JsonOption = False,
    home: HomeOption = None,
    store_url: StoreOption = None,
) -> None:
    """Undo `sweep stop`: agents are handed this sweep's runs again (start them with `sweep agent ID`)."""
    from agent.sweep_admin import resume_sweep

    with cli_errors():
        result = resume_sweep(open_store_for(store_url, home), sweep_id)
    if as_json:
        print(json.dumps(result.model_dump()))
        return
    if result.changed:
        console.print(f"sweep {escape(result.id)} is running again (was {result.was}); "
                      f"start agents with `sweep agent {escape(result.id)}`", highlight=False, soft_wrap=True)
    else:
        console.print(f"sweep {escape(result.id)} is already running; nothing to resume", highlight=False)
