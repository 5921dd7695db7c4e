r"""Every bad input x every command: exit status, message, and whether outputs survive.

  python -m benchmarks.bad_inputs                       # full matrix, ~10 min on 2 cores
  python -m benchmarks.bad_inputs --out=benchmarks/bad_inputs_table.md
  python -m benchmarks.bad_inputs --only=marker,pix2pix  # commands whose name has these

Builds the corpus of `tests/badinputs.py` (empty, truncated, text-named-as-image,
decompression-bomb and 1x1 images; CMYK, 16-bit, palette, RGBA, 1-bit, animated
and EXIF-rotated images that must load; garbage, empty, truncated and
wrong-architecture weights files; broken ported-weights folders; output paths
that cannot be written; bad config fields), trains the four smoke runs the
inference commands need (2 steps each), then runs every input through every
command that reads its kind, two at a time. Before each run the output path
holds a precious file (or ported weights); afterwards the table says whether a
failed run left it byte-identical.

A row passes when a bad input gives exit status != 0, exactly one stderr line
`error: ...` naming the file and matching the problem, no traceback and an
untouched output; and when a good input gives exit status 0. The 1x1 image is
bad only for commands whose networks have a minimum size; elsewhere either
answer passes if it is clean.
"""

import concurrent.futures
import dataclasses
import os
import pathlib
import re
import sys
import tempfile
import time

from absl import app, flags

from tests import badinputs

_OUT = flags.DEFINE_string("out", None, "Also write the Markdown table to this file.")
_SCRATCH = flags.DEFINE_string("scratch", None, "Folder for the corpus and runs (default: temp).")
_ONLY = flags.DEFINE_list("only", None, "Run only commands whose name contains one of these.")
_WORKERS = flags.DEFINE_integer("workers", 2, "Commands run at once.")

RUNS = ("marker", "pix2pix", "stylize_net", "texture_net")
# Commands whose networks need a minimum input size: a 1x1 image must be refused.
MIN_SIZE_COMMANDS = ("texture", "stylize --content", "stylize_net", "pix2pix translate",
                     "marker decode")  # fmt: skip
CONFIG_CASES = [  # (name, extra train flags, regex of the problem; None: must run)
    ("misspelt section", ["--config.trian.num_steps=5"], "trian"),
    ("misspelt field", ["--config.train.num_stpes=5"], "num_stpes"),
    ("mistyped value", ["--config.render.marker_scale=abc"], "marker_scale"),
    ("batch_size=0", ["--config.train.batch_size=0"], "batch_size"),
    ("checkpoint_every_steps=0 (0: at the end)", ["--config.train.checkpoint_every_steps=0"], None),
]


@dataclasses.dataclass
class Job:
    command: str
    input: str
    argv: list[str]
    out: pathlib.Path | None  # The existing output a failed run must leave untouched.
    problem: str | None  # Regex; None: must succeed; "?": either, if clean.
    names: str | None  # Text the message must contain (the file), if any.
    prepare: bool = True  # Put a precious file (or ported weights) at `out` first.
    ok_codes: tuple[int, ...] = (0,)  # Exit statuses that mean the input was read.
    outcome: badinputs.Outcome | None = None
    seconds: float = 0.0
    skipped: str | None = None  # Why it was not run (a smoke run it needs did not train).

    @property
    def verdict(self) -> str:
        if self.skipped:
            return "SKIPPED"
        o = self.outcome
        read = o.returncode in self.ok_codes and not o.traceback
        clean = (
            o.returncode != 0
            and len(o.lines) == 1
            and o.message.startswith("error: ")
            and not o.traceback
            and o.untouched is not False
        )
        if self.problem is None:
            return "ok" if read else "FAIL (should load)"
        if self.problem == "?":
            return "ok" if read or clean else "FAIL (not clean)"
        if not clean:
            return "FAIL (not clean)"
        if self.names and self.names not in o.message:
            return "FAIL (file not named)"
        if not re.search(self.problem, o.message, re.IGNORECASE):
            return "FAIL (problem not named)"
        return "ok"


def _train_runs(runs: dict[str, str], jobs: list[Job]) -> None:
    """Trains (2 steps) the smoke runs that `jobs` use; jobs whose run fails are skipped."""
    for name in RUNS:
        workdir = pathlib.Path(runs[name])
        used = any(f"--workdir={workdir}" in job.argv for job in jobs)
        if used and not (workdir / "checkpoints").exists():
            outcome = badinputs.run(
                ["scripts.train", f"--config=configs/{name}.py:smoke", f"--workdir={workdir}",
                 "--config.train.num_steps=2", "--config.train.checkpoint_every_steps=2",
                 "--config.train.log_every_steps=2"]
            )  # fmt: skip
            if outcome.returncode != 0:
                reason = f"the {name} smoke run did not train: {outcome.message[-200:]}"
                print(reason, file=sys.stderr)
                for job in jobs:
                    if f"--workdir={workdir}" in job.argv:
                        job.skipped = reason


def _image_jobs(scratch, runs, images) -> list[Job]:
    jobs = []
    for command in badinputs.IMAGE_COMMANDS.values():
        for case in images:
            problem = case.problem
            if case.name == "tiny.png" and command.name not in MIN_SIZE_COMMANDS:
                problem = "?"
            jobs.append(_job(scratch, runs, command, case.name, str(case.path), problem,
                             case.path.name))  # fmt: skip
    return jobs


def _job(scratch, runs, command, label, value, problem, names, extra=()) -> Job:
    folder = pathlib.Path(tempfile.mkdtemp(prefix="job_", dir=scratch))
    out = {"file": folder / "out.png", "dir": folder / "ported", None: None}[command.writes]
    argv = command.argv(value, out, runs, folder) + list(extra)
    return Job(command.name, label, argv, out, problem, names, ok_codes=command.ok_codes)


def _output_job(scratch, runs, command, case, good) -> Job:
    """`command` on a good input writing to the unwritable `case.path`."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="job_", dir=scratch))
    argv = command.argv(str(good), case.path, runs, folder)
    watched = case.path if case.path.is_dir() else case.path.parent  # The folder, or the file.
    return Job(command.name, case.name, argv, watched, case.problem, case.path.name, False)


def _all_jobs(scratch: pathlib.Path, runs: dict) -> list[Job]:
    images = badinputs.images(scratch / "images")
    weights = badinputs.weight_files(scratch / "weights")
    vgg16 = next(c.path for c in weights if c.path.name == "vgg16.h5")
    runs["vgg16.h5"] = str(vgg16)
    ported = scratch / "ported_vgg16"
    if not ported.exists():
        outcome = badinputs.run(
            ["scripts.convert_vgg", f"--src={vgg16}", f"--out={ported}", "--arch=vgg16"]
        )
        assert outcome.returncode == 0, outcome.stderr
    runs["ported"] = str(ported)
    jobs = _image_jobs(scratch, runs, images)
    for case in weights:
        extra = ("--arch=vgg19",) if "as vgg19" in case.name else ()
        jobs.append(_job(scratch, runs, badinputs.WEIGHT_COMMANDS["convert_vgg"], case.name,
                         str(case.path), case.problem, case.path.name, extra))  # fmt: skip
    for command in badinputs.VGG_DIR_COMMANDS.values():
        for case in badinputs.vgg_dirs(scratch / "vgg_dirs", ported):
            jobs.append(_job(scratch, runs, command, case.name, str(case.path), case.problem,
                             case.path.name))  # fmt: skip
    good = next(c for c in images if c.name == "palette.png")
    for command in badinputs.OUTPUT_COMMANDS.values():
        folder = scratch / f"outputs_{command.name.replace(' ', '_')}"
        for case in badinputs.output_cases(folder):
            jobs.append(_output_job(scratch, runs, command, case, good.path))
    jobs += _convert_overwrite_jobs(scratch, runs)
    return jobs + _config_jobs(scratch)


def _convert_overwrite_jobs(scratch: pathlib.Path, runs: dict) -> list[Job]:
    """convert_vgg onto existing weights: refused without --overwrite; a file as --out."""
    out = pathlib.Path(tempfile.mkdtemp(prefix="job_", dir=scratch)) / "ported"
    argv = ["scripts.convert_vgg", f"--src={runs['vgg16.h5']}", f"--out={out}", "--arch=vgg16"]
    (scratch / "a_weights_file").write_bytes(badinputs.PRECIOUS)
    as_file = ["scripts.convert_vgg", f"--src={runs['vgg16.h5']}",
               f"--out={scratch / 'a_weights_file'}", "--arch=vgg16"]  # fmt: skip
    return [
        Job("convert_vgg", "--out holds weights, no --overwrite", argv, out, "--overwrite",
            out.name),
        Job("convert_vgg", "--out is a file", as_file, scratch / "a_weights_file",
            "not a directory", "a_weights_file"),
    ]  # fmt: skip


def _config_jobs(scratch: pathlib.Path) -> list[Job]:
    jobs = []
    for name, extra, problem in CONFIG_CASES:
        workdir = pathlib.Path(tempfile.mkdtemp(prefix="job_", dir=scratch)) / "run"
        argv = ["scripts.train", "--config=configs/marker.py:smoke", f"--workdir={workdir}",
                "--config.train.num_steps=2", *extra]  # fmt: skip
        jobs.append(Job("train marker", name, argv, None, problem, None))
    argv = ["scripts.train", "--config=configs/marker.py:smok", f"--workdir={scratch / 'x'}"]
    jobs.append(Job("train marker", "unknown variant", argv, None, "smok", None))
    return jobs


def _run(job: Job, runs: dict) -> Job:
    if job.skipped:
        return job
    if job.out is not None and job.prepare:
        ported = pathlib.Path(runs["ported"]) if job.out.name == "ported" else None
        badinputs.prepare_output(job.out, "dir" if ported else "file", ported)
    start = time.perf_counter()
    job.outcome = badinputs.run(job.argv, out=job.out)
    job.seconds = time.perf_counter() - start
    return job


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")[:400]


def table(jobs: list[Job]) -> str:
    """The Markdown table and a summary."""
    rows = [
        "| command | input | expected | exit | output untouched | verdict | message (last stderr line) |",
        "|---|---|---|---|---|---|---|",
    ]
    for j in jobs:
        o = j.outcome or badinputs.Outcome(-1, "", j.skipped or "", None)
        expected = {None: "loads", "?": "either"}.get(j.problem, "error")
        untouched = {None: "n/a", True: "yes", False: "**NO**"}[o.untouched]
        if o.returncode in j.ok_codes:
            untouched = "(written)" if j.out is not None and o.returncode == 0 else "n/a"
        message = o.message if o.returncode not in j.ok_codes else f"(exit {o.returncode})"
        status = "-" if j.skipped else o.returncode
        rows.append(
            f"| {_cell(j.command)} | {_cell(j.input)} | {expected} | {status} | "
            f"{untouched} | {j.verdict} | {_cell(message)} |"
        )
    ran = [j for j in jobs if not j.skipped]
    failed = [j for j in ran if j.verdict != "ok"]
    tracebacks = sum(j.outcome.traceback for j in ran)
    clobbered = sum(j.outcome.untouched is False and j.outcome.returncode != 0 for j in ran)
    summary = (
        f"\n{len(ran)} runs: {len(ran) - len(failed)} ok, {len(failed)} not; "
        f"{tracebacks} tracebacks; {clobbered} clobbered outputs; "
        f"{len(jobs) - len(ran)} skipped.\n"
    )
    return "\n".join(rows) + "\n" + summary


def main(argv):
    del argv
    scratch = pathlib.Path(_SCRATCH.value or tempfile.mkdtemp(prefix="bad_inputs_"))
    scratch.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NEURAL_SYNTH_CACHE_DIR", str(scratch / "xla_cache"))
    start = time.perf_counter()
    runs = {name: str(scratch / f"run_{name}") for name in RUNS}
    jobs = _all_jobs(scratch, runs)
    if _ONLY.value:
        jobs = [j for j in jobs if any(word in j.command for word in _ONLY.value)]
    _train_runs(runs, jobs)
    print(f"{len(jobs)} runs, {_WORKERS.value} at a time...", file=sys.stderr, flush=True)
    with concurrent.futures.ThreadPoolExecutor(_WORKERS.value) as pool:
        for i, job in enumerate(pool.map(lambda j: _run(j, runs), jobs)):
            print(f"[{i + 1}/{len(jobs)}] {job.command} / {job.input}: {job.verdict} "
                  f"({job.seconds:.1f} s)", file=sys.stderr, flush=True)  # fmt: skip
            if _OUT.value and i + 1 < len(jobs):  # A partial table survives an interruption.
                partial = table(jobs[: i + 1]) + f"(partial: {i + 1} of {len(jobs)} runs)\n"
                pathlib.Path(_OUT.value).write_text(partial, encoding="utf-8")
    text = table(jobs) + f"Wall time {time.perf_counter() - start:.0f} s.\n"
    print(text)
    if _OUT.value:
        pathlib.Path(_OUT.value).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    app.run(main)
