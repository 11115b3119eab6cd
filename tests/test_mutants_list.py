"""nox -s mutants only means something while every mutation still applies to
the source it breaks: a source edit that moves a mutation's text must fail
here, in the suite, not at the next mutation run."""
from tests import mutants


def test_every_mutation_applies_once_and_is_listed(capsys):
    assert mutants.main(["--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [m.id for m in mutants.MUTATIONS]
    assert any(m.file.startswith("examples/") for m in mutants.MUTATIONS)
