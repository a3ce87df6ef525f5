"""A job as the fake farm builds it from an Open Job Description template, read by AWS's
own `openjd-model` (the library the `deadline` client and the worker agent use), never by
code of ours: what it refuses, CreateJob refuses with its words.

From the template and CreateJob's `parameters` it takes each step's name, its
`hostRequirements.amounts`, its dependencies, its parameter space as GetStep shows it
(`parameterSpace`, with `chunks` for a CHUNK[INT] parameter: TASK_CHUNKING), and its tasks:
one a frame, also in a chunked step, whose runs take `defaultTaskCount` frames at once
(docs/design.md, "The fake Deadline").
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openjd import model as openjd

# the extensions the service accepts in a template (Deadline supports TASK_CHUNKING)
EXTENSIONS = ("TASK_CHUNKING",)
# OpenJD's parameter types as the Deadline API names them (StepParameterType, TaskParameters)
_API_TYPE = {"INT": "INT", "FLOAT": "FLOAT", "STRING": "STRING", "PATH": "PATH"}
_API_TYPE["CHUNK[INT]"] = "CHUNK_INT"
_VALUE_KEY = {"INT": "int", "FLOAT": "float", "STRING": "string", "PATH": "path"}
_VALUE_KEY["CHUNK[INT]"] = "chunkInt"
_PARAMETER_TYPE = {
    "int": openjd.ParameterValueType.INT,
    "float": openjd.ParameterValueType.FLOAT,
    "string": openjd.ParameterValueType.STRING,
    "path": openjd.ParameterValueType.PATH,
}


class TemplateError(ValueError):
    """The template or its parameters are not what OpenJD allows: the message says why."""


@dataclass(frozen=True)
class StepSpec:
    """One step of a job as the template makes it."""

    name: str
    amounts: tuple[tuple[str, float, float | None], ...]  # (amount.x, min, max)
    depends_on: tuple[str, ...]  # names of the steps it waits for
    parameter_space: dict[str, Any] | None  # GetStep's `parameterSpace`, or None
    tasks: tuple[dict[str, Any], ...]  # each task's `parameters`, in the API's form
    chunk: int  # frames a run takes at once; 1: not chunked
    target_runtime: int | None  # chunks.targetRuntimeSeconds: adaptive chunk sizes
    command: str = ""  # its onRun command: what the fake takes for the product it runs


@dataclass(frozen=True)
class JobSpec:
    name: str
    description: str
    steps: tuple[StepSpec, ...]


def build(text: str, kind: str, parameters: dict[str, Any] | None = None) -> JobSpec:
    """The job `text` (a template of `kind` JSON or YAML) makes with CreateJob's
    `parameters` ({name: {"int"|"float"|"string"|"path": value}}). Raises TemplateError."""
    return _build(text, kind, json.dumps(parameters or {}, sort_keys=True))


@functools.lru_cache(maxsize=256)
def _build(text: str, kind: str, parameters: str) -> JobSpec:
    # cached: a farm of 30,000 jobs is made of a handful of templates, and openjd-model
    # takes a few milliseconds to decode one
    try:
        kind_ = openjd.DocumentType.JSON if kind == "JSON" else openjd.DocumentType.YAML
        document = openjd.document_string_to_object(document=text, document_type=kind_)
        template = openjd.decode_job_template(template=document, supported_extensions=EXTENSIONS)
        values = {k: _value(k, v) for k, v in json.loads(parameters).items()}
        job = openjd.create_job(job_template=template, job_parameter_values=values)
    except (openjd.DecodeValidationError, openjd.ModelValidationError, ValueError) as e:
        raise TemplateError(str(e)) from e
    steps = tuple(_step(s) for s in job.steps)
    return JobSpec(job.name, getattr(job, "description", None) or "", steps)


def _value(name: str, wire: Any) -> openjd.ParameterValue:
    if not isinstance(wire, dict) or len(wire) != 1 or next(iter(wire)) not in _PARAMETER_TYPE:
        raise TemplateError(f"parameter {name!r}: exactly one of int, float, string, path")
    key, value = next(iter(wire.items()))
    return openjd.ParameterValue(type=_PARAMETER_TYPE[key], value=str(value))


def _step(step: Any) -> StepSpec:
    amounts = tuple(
        (a.name, float(a.min if a.min is not None else 1), None if a.max is None else float(a.max))
        for a in ((step.hostRequirements and step.hostRequirements.amounts) or ())
    )
    depends_on = tuple(d.dependsOn for d in step.dependencies or ())
    on_run = step.script.actions.onRun
    command = str(on_run.command) if on_run is not None else ""
    space = step.parameterSpace
    if space is None:
        return StepSpec(step.name, amounts, depends_on, None, ({},), 1, None, command)
    chunk, target, wire = 1, None, []
    for name, definition in space.taskParameterDefinitions.items():
        item, chunking = _parameter(name, definition)
        if chunking is not None:
            chunk, target = chunking
        wire.append(item)
    api_space: dict[str, Any] = {"parameters": wire}
    if space.combination:
        api_space["combination"] = space.combination
    # one task a frame: the iterator gives chunks of one
    frames = openjd.StepParameterSpaceIterator(space=space, chunks_task_count_override=1)
    tasks = tuple(
        {n: {_VALUE_KEY[v.type.value]: _single(v.value)} for n, v in params.items()}
        for params in frames
    )
    return StepSpec(step.name, amounts, depends_on, api_space, tasks, chunk, target, command)


def _parameter(name: str, definition: Any) -> tuple[dict[str, Any], tuple[int, Any] | None]:
    """A task parameter as the API shows it, and its chunking (tasks a chunk, the target
    runtime) when it has one."""
    item: dict[str, Any] = {"name": name, "type": _API_TYPE[definition.type.value]}
    chunks = getattr(definition, "chunks", None)
    if chunks is None:
        return item, None
    chunk, target = int(chunks.defaultTaskCount), chunks.targetRuntimeSeconds
    item["chunks"] = {"defaultTaskCount": chunk, "rangeConstraint": chunks.rangeConstraint.value}
    if target is not None:
        item["chunks"]["targetRuntimeSeconds"] = int(target)
    return item, (chunk, target)


def _single(value: str) -> str:
    """A chunk of one frame ("7-7") as the frame it is ("7")."""
    first, sep, last = value.partition("-")
    return first if sep and first == last else value


def simple_template(
    name: str,
    tasks: int,
    amount: str | None = None,
    units: int = 1,
    steps: int = 1,
    chunk: int = 1,
    *,
    also: Sequence[str] = (),
    after_unlicensed: bool = False,
    command: str = "render",
) -> str:
    """A JSON template of `steps` steps of `tasks` frames each, every step needing `units`
    of `amount` and one of each of `also` (none: an unlicensed step), run `chunk` frames at
    a time by `command`; `after_unlicensed` puts an unlicensed step of one task before
    them, which they depend on."""
    frame: dict[str, Any] = {"name": "Frame", "type": "INT", "range": f"1-{max(1, tasks)}"}
    if chunk > 1:
        frame["type"] = "CHUNK[INT]"
        frame["chunks"] = {"defaultTaskCount": chunk, "rangeConstraint": "CONTIGUOUS"}
    run = {"actions": {"onRun": {"command": command, "args": ["{{Task.Param.Frame}}"]}}}
    step: dict[str, Any] = {"parameterSpace": {"taskParameterDefinitions": [frame]}, "script": run}
    wanted = [{"name": amount, "min": units}] if amount else []
    wanted += [{"name": a, "min": 1} for a in also]
    if wanted:
        step["hostRequirements"] = {"amounts": wanted}
    made = [{"name": f"step{i}", **step} for i in range(steps)]
    if after_unlicensed:
        prepare = {"name": "prepare", "script": {"actions": {"onRun": {"command": "prepare"}}}}
        made = [prepare, *({**s, "dependencies": [{"dependsOn": "prepare"}]} for s in made)]
    template: dict[str, Any] = {
        "specificationVersion": "jobtemplate-2023-09",
        "name": name,
        "steps": made,
    }
    if chunk > 1:
        template["extensions"] = ["TASK_CHUNKING"]
    return json.dumps(template)
