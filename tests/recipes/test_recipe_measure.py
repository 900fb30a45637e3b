"""What asteroid_tdanet.recipes.measure reads from a recipe's log."""

from __future__ import annotations

from recipe_helpers import REPO

from asteroid_tdanet.recipes.measure import stage_seconds


def test_stage_seconds_are_differences_of_the_drivers_running_total():
    log = (
        "[12:00:01] stage 0: download\n[12:00:10] stage 0 done (9 s)\n"
        "[12:00:18] stage 1 done (17 s)\nEpoch 0: 100%\n"
        "[12:10:00] stage 2 done (600 s); curve: exp/tdanet/training_curve.png\n"
        "[12:10:50] stage 3 done (650 s); separated examples: exp/tdanet/results/examples/\n"
        "[12:10:55] stage 4 done (655 s)\n"
    )
    assert stage_seconds(log) == {"0": 9, "1": 8, "2": 583, "3": 50, "4": 5}
    assert stage_seconds("[12:00:00] stage 2 done (30 s)\n") == {"2": 30}  # --stage 2 only


def test_the_driver_logs_what_stage_seconds_reads():
    driver = (REPO / "local" / "recipe.sh").read_text()
    # recipe.sh: log "stage N done ($(elapsed))" with elapsed() printing "<seconds> s".
    assert 'elapsed() { echo "$(( $(date +%s) - start_time )) s"; }' in driver
    for stage in range(5):
        assert f'log "stage {stage} done ($(elapsed))' in driver, stage
