"""`mlpipe verify`: which stored outputs of a range to check against their seals, and the repair
that removes what is corrupt (and everything built from it) so the next run rebuilds it."""
from __future__ import annotations

import datetime as dt

from pipeline import registry, verify
from pipeline.layout import MANIFEST_FILE
from tasks import ops
from tasks.config import PipelineConfig, current_dataset, get_storage, model_registry
from tasks.data import CleanReference, RawReference
from tasks.nightly import STAGES, day_tasks, stage_of
from tasks.queries import days_between

RAW, REGISTRY = "ingest", "registry"
VERIFY_STAGES = (*STAGES, REGISTRY)


def checked_outputs(start: dt.date, end: dt.date, stages: tuple[str, ...]) -> list[tuple[str, object]]:
    """(stage, task) of every output of [start, end] in `stages`: the raw zone (daily and
    reference tables) and the pipeline's stages (validate with its reference tables)."""
    data = current_dataset()
    found: list[tuple[str, object]] = []
    if RAW in stages:
        found += [(RAW, RawReference(table=t)) for t in data.reference_tables]
    if "validate" in stages:
        found += [("validate", CleanReference(table=t)) for t in data.reference_tables]
    for day in days_between(start, end):
        found += [(stage, task) for task in day_tasks(day) if (stage := stage_of(task)) in stages]
    return found


def find_problems(start: dt.date, end: dt.date, stages: tuple[str, ...]) -> tuple[int, list[dict]]:
    """(outputs checked, problems): each problem a pipeline.verify record plus its stage, date and
    the output's task (None for a registry version)."""
    store, checked, problems = get_storage(), 0, []
    for stage, task in checked_outputs(start, end, stages):
        checked += 1
        date = getattr(task, "date", None)
        problems += [{**p, "stage": stage, "date": date, "task": task} for p in verify.check_sealed(store, task.output())]
    if REGISTRY in stages:
        reg = model_registry(store)
        for version in reg.versions():
            checked += 1
            flag = store.flag(reg.version_dir(version))
            problems += [{**p, "stage": REGISTRY, "date": registry.version_date(version), "task": None,
                          "version": version} for p in verify.check_sealed(store, flag) + signature_problems(reg, version)]
    return checked, problems


def signature_problems(reg: registry.Registry, version: str) -> list[dict]:
    """A registry version whose manifest is unsigned or not validly signed (pipeline.signing)."""
    state, manifest = reg.signature(version), reg.storage.file(reg.version_dir(version), MANIFEST_FILE).path
    if state["valid"]:
        return []
    if not state["signed"]:
        return [verify.problem(verify.UNSIGNED, manifest, f"{manifest} is not signed: it will not load; check "
                                                          f"it, then `mlpipe models sign {version}`")]
    return [verify.problem(verify.FORGED, manifest, f"{manifest}: {state['problem']}")]


def repair_paths(problems: list[dict]) -> list[str]:
    """What `--repair` removes: stray temporary files, and for each output with a corrupt or
    missing file its whole directory and every output built from it (`mlpipe invalidate` of its
    stage and date; a raw partition's from the validate stage of its day, a reference table's from the
    features of every day; a registry version's from the deployment of its date). The landing
    zone is never touched: the raw zone is rebuilt from it."""
    store, paths = get_storage(), []
    for p in problems:
        if p["kind"] == verify.TEMP:
            paths.append(p["path"])
        elif p["kind"] in verify.REMOVES_OUTPUT:
            paths += _invalidated_by(p, store)
    return list(dict.fromkeys(path for path in paths if store.exists(path)))


def _invalidated_by(p: dict, store) -> list[str]:
    task, stage, day = p["task"], p["stage"], p["date"]
    if stage == REGISTRY:
        return [model_registry(store).version_dir(p["version"])] + ops.invalidation_paths(day, day, "deploy")
    if day is None:  # a reference table: every day's features read it
        start = PipelineConfig().start_date
        return [task.directory() if stage == RAW else ops.removable_paths(task)[0]] + \
            ops.invalidation_paths(start, ops.last_day_with_outputs() or start, "features")
    if stage == RAW:
        return [task.directory()] + ops.invalidation_paths(day, day, "validate")
    return ops.invalidation_paths(day, day, stage)
