"""nox -s mutants only means something while every mutation still applies to
the source it breaks: a source edit that moves a mutation's text must fail
here, in the suite, not at the next mutation run."""
from tests import mutants


def test_every_mutation_applies_once_and_is_listed(capsys):
    assert mutants.main(["--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [m.id for m in mutants.MUTATIONS]
    assert any(m.file.startswith("examples/") for m in mutants.MUTATIONS)


def test_what_a_run_leaves_running_is_killed_after_it():
    """A mutant's run that leaves a process behind (a background child of a
    shell that has exited) does not leave it running after the harness
    looked: the harness, a subreaper, finds and kills it, and says what."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    harness = ("import subprocess\nfrom bpflab.host import processes\nfrom tests import mutants\nprocesses.become_subreaper()\n"
               "out = subprocess.run(['sh', '-c', 'sleep 600 >/dev/null 2>&1 & echo $!'], capture_output=True, text=True).stdout\n"
               "print(out.strip())\nprint(mutants.reap_orphans())\n")
    done = subprocess.run([sys.executable, "-c", harness], capture_output=True, text=True, timeout=60,
                          cwd=Path(mutants.__file__).parent.parent, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stderr
    pid, killed = done.stdout.splitlines()
    assert killed == "['sleep 600']"
    assert not Path(f"/proc/{pid}").exists()
