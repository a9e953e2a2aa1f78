"""The deployed bench's CPU ceiling (bench/bench_deployed.py): what the CPU
a protocol run used allows on a machine of a given number of cores."""

from bench.bench_deployed import cpu_ceiling


def _cpu(wall: float, **procs: float) -> dict:
    return {"wall_s": wall, **{p: {"total": t, "main": t / 2} for p, t in procs.items()}}


def test_ceiling_is_mooncake_time_over_the_cpu_spread_on_the_cores():
    # 0.245 CPU s on 2 cores need at least 0.1225 s: Mooncake alone's
    # 0.071 s is 0.58 of that, whatever the run's wall time was
    b = cpu_ceiling(0.071, _cpu(0.151, encode=0.085, rank1=0.080, rank2=0.080), 2)
    assert b["cpu_s"] == 0.245
    assert b["ceiling"] == round(0.071 / 0.1225, 3)
    assert b["busy"] == round(0.245 / (2 * 0.151), 3)


def test_more_cores_raise_the_ceiling_up_to_one():
    cpu = _cpu(0.151, encode=0.085, rank1=0.080, rank2=0.080)
    assert cpu_ceiling(0.071, cpu, 1)["ceiling"] < cpu_ceiling(0.071, cpu, 2)["ceiling"]
    assert cpu_ceiling(0.071, cpu, 16)["ceiling"] == 1.0


def test_a_run_that_used_no_cpu_is_not_capped():
    assert cpu_ceiling(0.07, {"wall_s": 0.1}, 2)["ceiling"] == 1.0
