"""Checks of the workflow's settings, run when the workflow starts (also in a dry run).

Plain functions, called where the pipeline resolves its settings
(``pipeline/rules/common.smk``), so that a wrong setting stops the workflow before any job
runs, with a message of a few lines naming the setting, its value and what is allowed:

* :func:`check_settings` — JSON-schema validation with a short message (Snakemake's
  ``validate`` prints the whole schema);
* :func:`check_model_args` — a model's ``args`` against its builder's keyword parameters (a
  typo such as ``hiden`` would otherwise surface only when training starts, after the old
  ``model.pt`` was deleted);
* :func:`check_model_datasets` — the dataset names of a model's per-dataset blocks.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

#: Builder arguments that training sets itself; a settings file must not.
SET_BY_TRAINING = ("in_dim", "num_classes", "streams")


@cache
def _schema(path: str) -> dict[str, Any]:
    import yaml

    with open(path) as handle:
        return yaml.safe_load(handle)


def _dotted(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: Any) -> str:
    where = _dotted(error.absolute_path)
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    line = f"{where}: {error.message}" if where else error.message
    if description and error.validator not in ("additionalProperties", "required"):
        first = " ".join(str(description).split())
        line += f" ({first[:117] + '...' if len(first) > 120 else first})"
    return line


def check_settings(data: Mapping[str, Any], schema: str | Path, what: str, *,
                   limit: int = 3) -> None:
    """Validate ``data`` against the JSON schema file ``schema``; raise a short error.

    Raises:
        ValueError: ``"<what>: invalid settings"`` and at most ``limit`` lines, each naming a
            setting (dotted path), its value and the rule it breaks (type, range, allowed
            values, unknown key), most relevant first.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema(str(schema)))
    errors = sorted(validator.iter_errors(dict(data)), key=jsonschema.exceptions.relevance)
    if not errors:
        return
    best = jsonschema.exceptions.best_match(errors)
    ordered = [best] + [e for e in errors if e is not best]
    lines = [f"  {_describe(e)}" for e in ordered[:limit]]
    more = f"\n  ... and {len(errors) - limit} more" if len(errors) > limit else ""
    raise ValueError(f"{what}: invalid settings (schema {Path(schema).name}):\n"
                     + "\n".join(lines) + more)


def check_model_args(model: str, args: Mapping[str, Any] | None, *, where: str) -> None:
    """Every key of a model's ``args`` is a keyword parameter of its builder.

    Raises:
        ValueError: an unknown argument (with the closest known name) or one that training
            sets itself, naming the model and ``where`` the settings come from.
    """
    from wtal.models import builder_parameters

    known = builder_parameters(model) - set(SET_BY_TRAINING)
    for key in args or {}:
        if key in SET_BY_TRAINING:
            raise ValueError(f"{where}: args.{key} of model {model} is set by training from the "
                             f"features; remove it")
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{where}: args.{key} is not an argument of model {model}'s builder{hint}; "
                f"its arguments: {', '.join(sorted(known))}"
            )


def check_model_settings(model: str, settings: Mapping[str, Any], *, where: str) -> None:
    """A model's resolved settings: its ``args`` and every ablation variant's ``args``."""
    check_model_args(model, settings.get("args"), where=where)
    for variant, overrides in (settings.get("ablations") or {}).items():
        args = {**(settings.get("args") or {}), **((overrides or {}).get("args") or {})}
        check_model_args(model, args, where=f"{where}, ablation {variant!r}")


def check_model_datasets(model: str, blocks: Mapping[str, Any] | None, known: Iterable[str],
                         *, source: str) -> None:
    """The per-dataset blocks of a model name known datasets (else the block would be ignored).

    Raises:
        ValueError: naming the model, ``source``, the unknown dataset and the known ones.
    """
    if blocks is None:
        return
    if not isinstance(blocks, Mapping):
        raise ValueError(f"{source}: datasets of model {model} must map dataset -> settings")
    known = sorted(known)
    for name in blocks:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{source}: model {model} has settings for dataset {name!r}, which is not a "
                f"dataset{hint}; known: {', '.join(known)}"
            )
