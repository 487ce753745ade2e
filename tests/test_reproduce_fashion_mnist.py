"""benchmarks/reproduce_fashion_mnist.py's plan (what lth_tf.main is asked to run) and its tables of both
measures, without running it."""
import pytest

from benchmarks import reproduce_fashion_mnist as repro
from lth_tf import main as lth_main
from lth_tf import report
from test_report_convergence import convergence_results


def parse(args):
    """The Config `python -m lth_tf.main <args>` would run (flags parsed as main parses them)."""
    try:
        lth_main.FLAGS(["lth_tf.main", *args])
        return lth_main.config_from_flags()
    finally:
        lth_main.FLAGS.unparse_flags()


def test_the_plan_stacks_the_three_lenet_variants_and_the_two_oneshot_trials(tmp_path):
    plan = repro.jobs(str(tmp_path), "/data", repro.TRIALS, repro.ITERATIONS)
    assert [optional for _, _, optional in plan] == [False, False]  # rearrange and one-shot are not skippable
    iterative, oneshot = (parse(args) for _, args, _ in plan)
    assert (iterative.pruning, iterative.variants, iterative.trials, iterative.parallel_trials) == \
        ("iterative", ("lottery", "reinit", "rearrange"), 5, 5)
    assert (oneshot.pruning, oneshot.variants, oneshot.trials, oneshot.parallel_trials) == \
        ("oneshot", ("lottery",), 2, 2)
    for cfg in (iterative, oneshot):
        assert (cfg.model, cfg.rounds, cfg.round_iterations, cfg.eval_every) == ("lenet300_100", 15, 2400, 100)
    differ = {k for k in iterative.identity() if iterative.identity()[k] != oneshot.identity().get(k)}
    assert differ == {"pruning"}  # the same training otherwise


def test_parallel_trials_never_exceeds_a_jobs_trials_and_1_runs_them_in_turn(tmp_path):
    widths = lambda plan: [parse(args).parallel_trials for _, args, _ in plan]  # noqa: E731
    assert widths(repro.jobs(str(tmp_path), "/data", 5, 200, oneshot_trials=2, parallel=3)) == [3, 2]
    assert widths(repro.jobs(str(tmp_path), "/data", 5, 200, oneshot_trials=2, parallel=1)) == [1, 1]


def test_the_tables_show_both_measures_with_converged_counts(tmp_path):
    df = report.load_results(convergence_results(tmp_path / "lenet_iterative"))
    summary = report.summarize(df)
    table = repro.headline(summary, [("lottery", "iterative")], "convergence_iteration", 1.0, 0, count="converged")
    rows = [line.strip("|").split("|")[-1].strip() for line in table.splitlines()[2:]]
    assert rows == ["2100 [2000–2200] (n=2/2)", "3250 [3000–3500] (n=2/2)", "not converged (n=0/2)"]
    early = repro.headline(summary, [("lottery", "iterative")], "early_stop_iteration", 1.0, 0)
    assert early.splitlines()[2].endswith("| 1100 [1000–1200] (n=2) |")
    # Round 2 rises by 0.002 per evaluation in every trial and variant: 4 of 12 rounds, each 0.002 from flat.
    assert repro.closest_approach(df) == (
        "4 of 12 rounds did not converge by footnote 1's rule; in their steadiest 1000 iterations the moving "
        "average still changed by up to 0.0020 between evaluations (median over those rounds; range 0.0020 to "
        "0.0020), against the rule's 0.001.")
    assert "trial 0: 2000, trial 1: 2200." in repro.dense_minimum_check(df)


@pytest.mark.parametrize("bad", ["--trials=0", "--parallel_trials=0", "--rounds=-1"])
def test_bad_options_are_one_line_and_exit_2(bad, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["reproduce_fashion_mnist.py", bad])
    with pytest.raises(SystemExit) as stop:
        repro.main()
    assert stop.value.code == 2
    assert "must be at least" in capsys.readouterr().err.strip().splitlines()[-1]
