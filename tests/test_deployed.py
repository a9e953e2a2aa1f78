"""The reference deployed as processes (reference/deployed): real ZMQ, the
real Mooncake transfer engine over TCP on loopback, a real gloo group.

Each scenario starts an encode process and one process per rank, checks
that every handed-off embedding equals the source bytes, and checks the
merged per-process traces with the native checker and, for the short
ones, TLC trace validation."""

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
zmq = pytest.importorskip("zmq")
pytest.importorskip("mooncake.engine")

from resumespec import exitcodes
from resumespec.conformance.trace import read_trace
from resumespec.reference.deployed.common import DeployConfig, digest, source_embedding
from resumespec.reference.deployed.driver import (
    DeployResult,
    _verify,
    check_traces,
    deploy,
    trace_files,
)

# small enough for CI: 32-token blocks, 64-token init allocation, at most 2
# blocks per resume, so a 300-token embedding takes 5 rounds
SMALL = dict(block_size=32, hidden=32, init_tokens=64, cap=2, timeout_s=120)


def _events(trace_dir):
    out = []
    for f in trace_files(trace_dir):
        out += [ev for _, ev in read_trace(f)]
    return out


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory):
    cfg = DeployConfig(ranks=1, lengths=[300, 50], pool_blocks=8, **SMALL)
    res = deploy(cfg, tmp_path_factory.mktemp("one"))
    res.verdicts = check_traces(res.trace_dir, ("native", "tlc"))
    return cfg, res


@pytest.fixture(scope="module")
def two_ranks_write_error(tmp_path_factory):
    cfg = DeployConfig(ranks=2, lengths=[200, 40, 120], pool_blocks=8, fault="write_error",
                       fault_req=1, **SMALL)
    res = deploy(cfg, tmp_path_factory.mktemp("two"))
    res.verdicts = check_traces(res.trace_dir, ("native", "tlc"))
    return cfg, res


def test_one_rank_multi_round_hands_over_the_source_bytes(one_rank):
    cfg, res = one_rank
    assert res.mismatches == []
    assert res.outcomes == {1: "handed", 2: "handed"}
    evs = _events(res.trace_dir)
    rounds = [ev for ev in evs if ev["event"] == "round_start" and ev["req"] == 1]
    assert len(rounds) == 5          # 64 + 4 x 64 tokens
    assert {ev["proc"] for ev in evs} == {"encode", "language/1"}
    assert all("ts" in ev for ev in evs)


def test_one_rank_traces_conform_with_both_checkers(one_rank):
    _, res = one_rank
    assert res.verdicts["native"]["verdict"] == "conforms", res.verdicts["native"]
    assert res.verdicts["tlc"]["verdict"] == "conforms", res.verdicts["tlc"]
    cov = res.verdicts["native"]["coverage"]
    assert cov["PollTransferringCorrected"] >= 4 and cov["PrefillDone"] == 2


def test_two_ranks_write_error_fails_only_that_request(two_ranks_write_error):
    cfg, res = two_ranks_write_error
    assert res.mismatches == []
    assert res.outcomes == {1: "failed", 2: "handed", 3: "handed"}
    evs = _events(res.trace_dir)
    assert {ev["proc"] for ev in evs} == {"encode", "language/1", "language/2"}
    errs = [ev for ev in evs if ev["event"] == "write_error"]
    assert [ev["req"] for ev in errs] == [1]
    failed = [ev for ev in evs if ev["event"] == "status_sent" and ev["status"] == "Failed"]
    assert sorted(ev["session"] for ev in failed) == [1, 2]
    # the rank processes all-reduced their statuses: both polled Failed
    polls = [ev["proc"] for ev in evs if ev["event"] == "poll" and ev["decision"] == "fail"]
    assert sorted(polls) == ["language/1", "language/2"]


def test_two_ranks_traces_conform_with_both_checkers(two_ranks_write_error):
    _, res = two_ranks_write_error
    assert res.verdicts["native"]["verdict"] == "conforms", res.verdicts["native"]
    assert res.verdicts["tlc"]["verdict"] == "conforms", res.verdicts["tlc"]
    assert res.verdicts["native"]["coverage"]["WriteError"] == 1


def test_spinning_sync_writes_and_the_handoff_arena(tmp_path):
    """The encode process's old way of writing (Mooncake's
    batch_transfer_sync_write, one session after the other, kept for the
    throughput bench's "before"), with a failing write, the ranks' old pair
    of collectives per iteration (a broadcast of the commands, then the
    all-reduce), and prefill's input arena on the ranks: 256 rows, too few
    for the three embeddings (420 tokens) in flight together, so some are
    copied into the arena and the rest into fresh memory."""
    cfg = DeployConfig(ranks=2, lengths=[120, 200, 100], pool_blocks=8, fault="write_error",
                       fault_req=1, write_wait="sync", handoff_rows=256, collectives=2,
                       **SMALL)
    res = deploy(cfg, tmp_path)
    assert res.mismatches == []
    assert res.outcomes == {1: "failed", 2: "handed", 3: "handed"}
    evs = _events(res.trace_dir)
    assert [ev["session"] for ev in evs if ev["event"] == "write_error"] == [2]
    v = check_traces(res.trace_dir, ("native",))["native"]
    assert v["verdict"] == "conforms", v


def test_kill_9_of_the_encode_process_mid_transfer(tmp_path):
    """The heartbeat's loss reaches every rank through the all-reduce."""
    cfg = DeployConfig(ranks=2, lengths=[40, 300, 60], pool_blocks=8, fault="heartbeat",
                       fault_req=2, heartbeat_timeout_s=1.0, **SMALL)
    res = deploy(cfg, tmp_path)
    assert res.killed == 2
    assert res.mismatches == []
    assert res.outcomes[2] == "failed"
    evs = _events(res.trace_dir)
    lost = [ev for ev in evs if ev["event"] == "heartbeat_fail"]
    assert {ev["proc"] for ev in lost} == {"language/1", "language/2"}
    # every block came back: each rank's allocs are matched by frees
    v = check_traces(res.trace_dir, ("native",))["native"]
    assert v["verdict"] == "conforms", v
    assert v["coverage"]["Heartbeat"] >= 1


def test_receiver_abort_mid_transfer(tmp_path):
    cfg = DeployConfig(ranks=2, lengths=[300, 40], pool_blocks=8, fault="abort", fault_req=1,
                       **SMALL)
    res = deploy(cfg, tmp_path)
    assert res.mismatches == []
    assert res.outcomes == {1: "failed", 2: "handed"}
    evs = _events(res.trace_dir)
    assert sorted(ev["proc"] for ev in evs if ev["event"] == "abort_sent") == \
        ["language/1", "language/2"]
    assert sorted(ev["session"] for ev in evs if ev["event"] == "abort_recv") == [1, 2]
    v = check_traces(res.trace_dir, ("native",))["native"]
    assert v["verdict"] == "conforms", v
    assert v["coverage"]["SenderRecvAbort"] >= 1


def test_verify_catches_other_bytes_and_unexplained_failures():
    cfg = DeployConfig(ranks=2, lengths=[5, 7], hidden=8)
    good = digest(source_embedding(cfg.seed, 1, 5, 8))
    ends = {(1, 1): {"ok": True, "tokens": 5, "sha": good, "session": 1},
            (1, 2): {"ok": True, "tokens": 5, "sha": "0" * 64, "session": 2},
            (2, 1): {"ok": False, "reason": "status Failed", "session": 1},
            (2, 2): {"ok": False, "reason": "status Failed", "session": 2}}
    res = DeployResult({}, "", 0.0)
    _verify(cfg, ends, res)
    assert len(res.mismatches) == 2
    assert "rank 2" in res.mismatches[0] and "req 2 failed" in res.mismatches[1]


def test_cli_deploy_json(tmp_path, capsys):
    from resumespec.cli import main

    rc = main(["deploy", "--ranks", "1", "--lengths", "90,10", "--block-size", "16",
               "--hidden", "16", "--pool-blocks", "6", "--init-tokens", "32", "--cap", "2",
               "--out", str(tmp_path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == exitcodes.OK
    assert out["ok"] and out["handed"] == 2 and out["verdicts"]["native"]["verdict"] == "conforms"
    assert json.loads((tmp_path / "result.json").read_text())["tokens_handed"] == 100


def test_cli_deploy_takes_the_ranks_loop_option(tmp_path, capsys):
    """The ranks' loop option of DeployConfig is a flag of ``resumespec
    deploy``: two collectives run, the run conforms, and result.json
    records what ran."""
    from resumespec.cli import main

    rc = main(["deploy", "--ranks", "2", "--lengths", "70,10,40", "--block-size", "16",
               "--hidden", "16", "--pool-blocks", "6", "--init-tokens", "32", "--cap", "2",
               "--collectives", "2",
               "--out", str(tmp_path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == exitcodes.OK, out
    assert out["handed"] == 3 and out["verdicts"]["native"]["verdict"] == "conforms"
    cfg = json.loads((tmp_path / "result.json").read_text())["config"]
    assert cfg["collectives"] == 2


def test_cli_deploy_rejects_bad_options(capsys):
    from resumespec.cli import main

    assert main(["deploy", "--lengths", "10", "--handoff-rows", "-1"]) == exitcodes.USAGE
    assert "handoff_rows must be >= 0" in capsys.readouterr().err
    assert main(["deploy", "--lengths", "10", "--fault-req", "2"]) == exitcodes.USAGE
    assert "fault_req 2 is not a request" in capsys.readouterr().err


def test_cli_deploy_rejects_bad_lengths(capsys):
    from resumespec.cli import main

    assert main(["deploy", "--lengths", "10,x"]) == exitcodes.USAGE
    assert "comma list" in capsys.readouterr().err


FIXTURE = Path(__file__).parent / "fixtures" / "deployed_failed_split"


def test_failed_status_logged_after_the_all_reduce_ended_the_request():
    # A deployed run before the encode process logged a step's statuses
    # together: rank 1 got Failed, the all-reduce failed the request on both
    # ranks, and only then was Failed to rank 2 logged.  The spec allows it.
    verdicts = check_traces(str(FIXTURE), ("native", "tlc"))
    for checker in ("native", "tlc"):
        assert verdicts[checker]["verdict"] == "conforms", verdicts[checker]


LOST_SUCCESS = Path(__file__).parent / "fixtures" / "deployed_lost_success"


def test_the_lost_success_fixture_shows_the_race():
    """7a7a71977 kill, recorded deployed: the encode process logged Success
    for req 17 and was killed before ZMQ sent it; rank 1 never received it
    and failed req 17 on heartbeat loss (what a deployed engine does)."""
    from resumespec.conformance.trace import read_trace

    enc = [ev for _, ev in read_trace(str(LOST_SUCCESS / "encode.jsonl"))]
    lang = [ev for _, ev in read_trace(str(LOST_SUCCESS / "language-1.jsonl"))]
    sent = [ev for ev in enc if ev["event"] == "status_sent" and ev.get("req") == 17]
    assert [ev["status"] for ev in sent] == ["Success"]
    assert sent[0] is not enc[-1] and enc[-1]["ts"] - sent[0]["ts"] < 0.001   # then the kill
    assert not [ev for ev in lang if ev["event"] == "status_recv" and ev.get("req") == 17]
    assert [ev["event"] for ev in lang if ev.get("req") == 17][-3:] == ["poll", "free", "fail"]
    assert any(ev["event"] == "heartbeat_fail" and ev.get("req") == 17 for ev in lang)


def test_a_success_lost_with_the_killed_sender_then_heartbeat_loss_conforms():
    """The spec's Heartbeat fails a waiting request whatever the sender did
    with its room: a closed room's last status may die with the process."""
    verdict = check_traces(str(LOST_SUCCESS), ("native",))["native"]
    assert verdict["verdict"] == "conforms", verdict
    assert verdict["coverage"]["Heartbeat"] >= 1
