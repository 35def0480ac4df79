"""The ``nascli`` command: Typer owns the command level, Hydra owns everything after it.

Each config-driven command hands the rest of the command line to a ``@hydra.main`` entry point
(see ENGINEERING.md), so overrides, ``-m`` sweeps, ``--cfg job``, launchers and sweepers work as
Hydra users expect. The ``ARCH`` argument of ``evaluate`` and ``train-final`` becomes the
override ``arch=...``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from nascli import __version__

app = typer.Typer(
    name="nascli",
    help="Neural architecture search in the NASNet cell space.",
    no_args_is_help=True,
    add_completion=True,  # nascli --install-completion: commands, groups, options and keys
    pretty_exceptions_enable=False,
)

_DELEGATE = {
    "allow_extra_args": True,
    "ignore_unknown_options": True,
    "help_option_names": [],
}

GROUPS = ("search_space", "strategy", "proxy", "dataset", "device", "executor", "logger",
          "objective", "schedule", "experiment")


def _group_options(group: str, roots: list[Path]) -> list[Path]:
    """The option files of a config group, in nascli's folder and the user's, sorted."""
    return sorted(p for root in roots for p in (root / group).glob("*.yaml"))


def _complete(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of a config-driven command's arguments: ``group=option``, ``group.key=``
    for the keys of a group's options, the primary config's top-level keys, and flags."""
    from nascli.config import config_dir

    root = config_dir()
    command = (ctx.info_name or "search").replace("-", "_")
    key, eq, value = incomplete.partition("=")
    if eq and key in GROUPS:
        return [f"{key}={p.stem}" for p in _group_options(key, [root])
                if p.stem.startswith(value)]
    group, dot, _ = key.partition(".")
    if dot and group in GROUPS:
        keys = sorted({k for p in _group_options(group, [root]) for k in _yaml_keys(p)})
        return [f"{group}.{k}=" for k in keys if f"{group}.{k}".startswith(key)]
    top = [f"{k}=" for k in _yaml_keys(root / f"{command}.yaml")
           if k.partition(".")[0] not in GROUPS]
    words = [f"{g}=" for g in GROUPS] + top + ["-m", "--cfg", "--json", "--help"]
    return [w for w in words if w.startswith(incomplete)]


def _yaml_keys(path: Path) -> list[str]:
    """Keys of a config file, one level of sections spelled out (``train.epochs``); not
    ``defaults``, ``hydra`` or ``_target_``."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    keys = []
    for k, v in data.items():
        if k in ("defaults", "hydra", "_target_"):
            continue
        keys += [f"{k}.{sub}" for sub in v] if isinstance(v, dict) and v else [str(k)]
    return keys


#: the arguments of a config-driven command: overrides and Hydra's flags, handed to Hydra
OVERRIDES = typer.Argument(None, help="key=value overrides and Hydra flags (try --help)",
                           autocompletion=_complete, show_default=False)


def _error(message: str, code: int = 2) -> None:
    typer.echo(f"nascli: error: {message}", err=True)
    raise typer.Exit(code)


def _config_roots(args: list[str]) -> list[Path] | None:
    """Folders that hold config groups: nascli's own, ``--config-dir`` ones and file search
    paths; None when a search path cannot be listed here (then Hydra checks the options)."""
    from nascli.config import config_dir

    roots = [config_dir()]
    for i, a in enumerate(args):
        if a in ("--config-dir", "-cd") and i + 1 < len(args):
            roots.append(Path(args[i + 1]).expanduser())
        elif a.startswith(("--config-dir=", "-cd=")):
            roots.append(Path(a.split("=", 1)[1]).expanduser())
        elif a.startswith(("hydra.searchpath=", "+hydra.searchpath=", "--config-path")):
            return None
    return roots


def _check_group_options(args: list[str]) -> None:
    """Fail fast, in one line, on an unknown group option (Hydra's own message is long)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    roots = _config_roots(args)
    if roots is None:
        return
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        _error(f"cannot parse the overrides: {str(exc).splitlines()[0]}")
        return
    for o in parsed:
        group = o.key_or_group.lstrip("+~").removeprefix("override ")
        if group not in GROUPS or o.is_delete():
            continue
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [
            o.get_value_element_as_str()
        ]
        valid = sorted({p.stem for p in _group_options(group, roots)})
        for v in values:
            if v not in valid and v != "null":
                _error(f"unknown {group} {v!r}; valid: {', '.join(valid)}")


#: launcher options and the plugin (module, pip extra) each needs
_LAUNCHERS = {
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "nascli[slurm]"),
    "local_jobs": ("hydra_plugins.hydra_submitit_launcher", "nascli[slurm]"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "nascli[slurm]"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "nascli[slurm]"),
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher"),
    "ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher (see docs/distributed.md)"),
}


def _check_launcher(args: list[str]) -> None:
    """One line naming the package when a launcher's plugin is not installed (Hydra's own
    message spans many lines and names no package)."""
    import importlib.util

    for a in args:
        key, _, value = a.partition("=")
        if key.lstrip("+").removeprefix("override ") != "hydra/launcher" or value not in _LAUNCHERS:
            continue
        module, package = _LAUNCHERS[value]
        if importlib.util.find_spec(module) is None:
            hint = package if "(" in package else f'pip install "{package}"'
            _error(f"hydra/launcher={value} needs a Hydra plugin that is not installed: {hint}")


#: Hydra's own flags that take a value in the next argument
_VALUE_FLAGS = {"--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn", "--cfg",
                "-c", "--package", "-p", "--info", "-i", "--experimental-rerun"}


def _positional(args: list[str]) -> list[int]:
    """Indices of arguments that are neither flags, flag values nor key=value overrides."""
    out = []
    for i, a in enumerate(args):
        if a.startswith("-") or "=" in a or (i > 0 and args[i - 1] in _VALUE_FLAGS):
            continue
        out.append(i)
    return out


def _check_run_dir(command: str, args: list[str]) -> None:
    """Refuse a new run pointed at a folder that holds one, before Hydra writes its own
    files (``.hydra/``, the log) there."""
    from nascli.engine.rundir import RUN_FILES

    if any(a.startswith(("resume=", "-m", "--multirun")) for a in args):
        return
    for a in args:
        key, _, value = a.partition("=")
        if key.lstrip("+") == "hydra.run.dir" and value:
            folder = Path(value.strip("'\"")).expanduser()
            if any((folder / name).exists() for name in (*RUN_FILES, "checkpoint.pt")):
                how = f"continue it with resume={folder}, or " if command == "search" else ""
                _error(f"{folder} already holds a run; {how}choose another hydra.run.dir")


def _into_resumed_run(args: list[str]) -> list[str]:
    """A resume writes into the run it continues (its log, no new output folder): Hydra's
    run folder becomes that run, without a second ``.hydra/`` record."""
    if any(a.startswith(("-m", "--multirun", "hydra.run.dir=", "+hydra.run.dir=",
                         "hydra.output_subdir")) for a in args):
        return args
    value = next((a.split("=", 1)[1] for a in args if a.startswith("resume=")), "")
    path = Path(value.strip("'\"")).expanduser() if value.strip("'\"") else None
    if path is None or not path.exists():
        return args  # the command itself says what is wrong with it
    folder = path if path.is_dir() else path.parent
    return [*args, f"hydra.run.dir={_quote(str(folder.resolve()))}", "hydra.output_subdir=null"]


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _delegate(command: str, args: list[str], with_arch: bool) -> None:
    """Hand ``args`` to the Hydra entry point of ``command``; with ``--json``, print one JSON
    object about the finished run(s) on stdout (logs and tables stay on stderr)."""

    args = list(args)
    if any(a in ("-sc", "--shell-completion") or a.startswith(("-sc=", "--shell-completion="))
           for a in args):
        _error("Hydra's shell completion cannot see nascli's commands; use "
               "nascli --install-completion (it completes commands, groups=options and keys)")
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    help_asked = any(a in ("--help", "-h", "--hydra-help") for a in args)
    if with_arch and not help_asked:
        positional = _positional(args)
        if positional:
            i = positional[0]
            args[i] = f"arch={_quote(args[i])}"
            if len(positional) > 1:
                _error(f"unexpected argument {args[positional[1]]!r}; "
                       "overrides look like key=value")
        elif not any(a.startswith(("arch=", "resume=")) for a in args) and not (
            {"--cfg", "-c"} & set(args)
        ):
            name = command.replace("_", "-")
            _error(f"missing ARCH: nascli {name} ARCH [key=value ...], where ARCH is a "
                   "built-in cell (nasnet-a, amoebanet-a, darts-v2), a genotype JSON file, "
                   "a run directory or a checkpoint")
    elif not help_asked:
        stray = _positional(args)
        if stray:
            _error(f"unexpected argument {args[stray[0]]!r}; overrides look like key=value")
    if not help_asked:
        _check_group_options(args)
        _check_launcher(args)
        _check_run_dir(command, args)
        args = _into_resumed_run(args)
    code = _run_and_report(command, args, as_json)
    if code:
        raise typer.Exit(code)


def _run_and_report(command: str, args: list[str], as_json: bool) -> int:
    import json

    from nascli import commands

    commands.FINISHED.clear()
    code = commands.run_hydra(command, args)
    printed_config = any(a in ("--cfg", "-c") or a.startswith("--cfg=") for a in args)
    if code == 0 and printed_config:  # --cfg job: refuse what a run would refuse
        roots = _config_roots(args) or []  # --config-dir folders after nascli's own
        problem = commands.check_composed(command, args, roots[1:])
        if problem:
            typer.echo(f"nascli: error: {problem}", err=True)
            return 2
    if as_json and code == 0 and commands.FINISHED:
        typer.echo(json.dumps(commands.json_summary(command), default=str))
    return code


@app.command(context_settings=_DELEGATE, add_help_option=False)
def search(args: list[str] | None = OVERRIDES) -> None:
    """Run a search; writes a run directory (history, best genotype, log). Try --help."""
    _delegate("search", args or [], with_arch=False)


@app.command(context_settings=_DELEGATE, add_help_option=False)
def evaluate(args: list[str] | None = OVERRIDES) -> None:
    """Estimate ARCH with the chosen proxy, or test a trained checkpoint. Try --help."""
    _delegate("evaluate", args or [], with_arch=True)


@app.command("train-final", context_settings=_DELEGATE, add_help_option=False)
def train_final(args: list[str] | None = OVERRIDES) -> None:
    """Train ARCH with the full recipe, test it and save a checkpoint. Try --help."""
    _delegate("train_final", args or [], with_arch=True)


@app.command(context_settings=_DELEGATE, add_help_option=False)
def correlate(args: list[str] | None = OVERRIDES) -> None:
    """Rank correlation of zero-cost proxies with trained accuracy (Spearman, Kendall)."""
    _delegate("correlate", args or [], with_arch=False)


@app.command()
def report(
    run_dirs: list[Path] = typer.Argument(..., help="run directories (or multirun folders)"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="folder for the report (default: PATH/report for one path, "
        "outputs/report/<date>/<time> for several); never a run directory"),
) -> None:
    """Tables and plots for one run or many: top candidates, best-so-far curves, cell diagrams."""
    from nascli.engine.rundir import RunDirError
    from nascli.report import ReportError, make_report
    from nascli.spaces import SpaceError

    try:
        make_report(run_dirs, out)
    except (ReportError, RunDirError, SpaceError) as exc:
        _error(str(exc).splitlines()[0])


@app.command("show")
def show(
    arch: str = typer.Argument(..., help="built-in name, genotype JSON or run directory"),
) -> None:
    """Print a cell in the paper's notation, and its one-line form."""
    from nascli.commands.common import ArchError, resolve_arch

    try:
        genotype, space, source = resolve_arch(arch)
    except ArchError as exc:
        _error(str(exc))
        return
    typer.echo(f"{source}\n{space.describe_genotype(genotype)}\n{space.to_text(genotype)}")
    typer.echo(f"hash {space.hash(genotype)}")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nascli {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """nascli: neural architecture search in the NASNet cell space."""


def main() -> None:
    """Console-script entry point."""
    app(prog_name="nascli")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
