"""The committed traces of ZhengWG/sglang get the verdicts their designs deserve.

The traces under conformance/corpus/sglang/ were recorded from the fork's real
code by scripts/record_sglang_traces.py (docs/sglang-adapter.md); the fork
itself is not needed here.  Also tests the adapter's in-process stand-ins,
which do not need the fork either.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from resumespec.conformance.checker_native import check_native
from resumespec.conformance.trace import read_trace

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "conformance" / "corpus" / "sglang"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())["traces"]
MAX_TRACE_BYTES = 200_000

DESIGNS = {  # commit -> (variant, resume_order, barrier), docs/model.md
    "d1bceb411": ("flag", "free_first", False),
    "7a7a71977": ("indices", "free_first", False),
    "caff70bd5": ("sent_tokens", "free_first", False),
    "2141e0842": ("cached_sent", "free_first", False),
    "cca20b094": ("once", "alloc_first", True),
}


def test_every_committed_trace_has_an_expected_verdict_and_back():
    on_disk = {p.relative_to(CORPUS).as_posix() for p in CORPUS.glob("*/*.jsonl")}
    assert on_disk == set(EXPECTED)
    assert {k.split("/")[0] for k in EXPECTED} == set(DESIGNS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trace_verdict(name):
    want = EXPECTED[name]
    v = check_native([str(CORPUS / name)])
    got = (v.verdict, v.prop)
    assert got == (want["verdict"], want["property"]), (
        f"{name}: expected {want['verdict']} {want['property']} ({want['reason']}); "
        f"checker says {v.verdict} {v.prop}: {v.message}")
    if "bounded" in want:
        b = want["bounded"]
        vb = check_native([str(CORPUS / name)], bound=b["k"])
        assert (vb.verdict, vb.prop) == (b["verdict"], b["property"]), vb.message
        if b["verdict"] == "incomplete":
            assert f"within {b['k']} events" in vb.message     # the bound, not the trace end
        else:   # a dead end at the trace's end is a violation, with or without a bound
            assert "no spec step is enabled" in vb.message, vb.message


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_verdict_from_per_process_logs(name, tmp_path):
    """An engine writes one log per process: split the merged trace the way the
    processes would have written it; merging by `ts` must give the same verdict."""
    files: dict[str, list[str]] = {}
    with open(CORPUS / name, encoding="utf-8") as f:
        for line in f:
            proc = json.loads(line)["proc"]
            files.setdefault(proc, []).append(line)
    assert len(files) >= 2
    paths = []
    for proc, lines in sorted(files.items()):
        path = tmp_path / (proc.replace("/", "-") + ".jsonl")
        path.write_text("".join(lines), encoding="utf-8")
        paths.append(str(path))
    want = EXPECTED[name]
    v = check_native(paths)
    assert (v.verdict, v.prop) == (want["verdict"], want["property"]), v.message


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trace_is_small_and_says_which_design_it_ran(name):
    path = CORPUS / name
    assert path.stat().st_size < MAX_TRACE_BYTES
    commit = name.split("/")[0]
    configs = [ev for _, ev in read_trace(path) if ev["event"] == "config"]
    nsess = configs[0]["nsess"]
    assert {ev["proc"] for ev in configs} == {"encode"} | {
        f"language/{r}" for r in range(1, nsess + 1)}
    assert nsess == (2 if EXPECTED[name]["scenario"].startswith("tp2_") else 1)
    for ev in configs:
        assert (ev["variant"], ev["resume_order"], ev["barrier"]) == DESIGNS[commit]
    assert EXPECTED[name]["variant"] == DESIGNS[commit][0]
    reason = EXPECTED[name]["reason"]
    assert len(reason) > 40


def test_every_design_is_judged_differently_somewhere():
    """The corpus separates the designs: no two commits share all verdicts."""
    rows: dict[str, tuple] = {}
    for name, e in sorted(EXPECTED.items()):
        commit = name.split("/")[0]
        rows[commit] = rows.get(commit, ()) + ((e["scenario"], e["verdict"], e["property"]),)
    mainline = rows.pop("cca20b094")
    assert all(r != mainline for r in rows.values())
    assert rows["caff70bd5"] != rows["2141e0842"]      # stale aux read vs cached key


def _events(name):
    return [ev for _, ev in read_trace(CORPUS / name)]


def _write(tmp_path, events):
    path = tmp_path / "t.jsonl"
    with open(path, "w") as f:
        seqs: dict[str, int] = {}
        for ev in events:
            ev = dict(ev)
            ev["seq"] = seqs.get(ev["proc"], 0)
            seqs[ev["proc"]] = ev["seq"] + 1
            f.write(json.dumps(ev) + "\n")
    return str(path)


def test_double_free_verdict_comes_from_the_second_free(tmp_path):
    """Dropping the failure path's second free of the old block removes NoDoubleFree."""
    events = _events("d1bceb411/alloc_fail_resume.jsonl")
    frees = [i for i, ev in enumerate(events)
             if ev["event"] == "free" and ev["req"] == 1 and ev["blocks"] == [0]]
    assert len(frees) == 2                       # resume's free, then the failure path's
    del events[frees[1]]
    v = check_native([_write(tmp_path, events)])
    assert v.prop != "NoDoubleFree"


def test_stale_aux_verdict_comes_from_the_second_resume(tmp_path):
    events = _events("caff70bd5/stale_aux.jsonl")
    resumes = [ev for ev in events if ev["event"] == "resume_sent" and ev["req"] == 4]
    assert [r["sent_tokens"] for r in resumes] == [4, 7]    # 7 = 4 + 3 stale tokens
    reads = [ev for ev in events if ev["event"] == "buffer_read" and ev["req"] == 4
             and ev["blocks"] == resumes[0]["blocks"]]
    assert reads and reads[0]["aux_total"] == 3 and reads[0]["ids"][0][0] == 1


@pytest.mark.parametrize("commit", ["d1bceb411", "cca20b094"])
def test_resume_race_writes_a_freed_block_only_without_barrier(commit):
    """Without the sender's barrier, session 2 gets a round into the block rank 2 freed."""
    freed, stray = set(), []
    for ev in _events(f"{commit}/tp2_resume_race.jsonl"):
        if ev["event"] == "free" and ev["rank"] == 2:
            freed.update(ev["blocks"])
        if ev["event"] == "alloc" and ev["rank"] == 2 and ev["blocks"]:
            freed.difference_update(ev["blocks"])
        if ev["event"] == "round_start" and ev["session"] == 2:
            stray += [b for b in ev["dst_blocks"] if b in freed]
    assert bool(stray) == (commit != "cca20b094")


# ---------------------------------------------------------------------------
# The adapter's in-process stand-ins (no fork needed)
# ---------------------------------------------------------------------------
def test_transfer_engine_copies_bytes_between_registered_tensors():
    from resumespec.conformance.adapters.sglang_inprocess import InProcessTransferEngine

    InProcessTransferEngine.reset()
    src, dst = torch.arange(8, dtype=torch.int32), torch.zeros(8, dtype=torch.int32)
    a, b = InProcessTransferEngine("h"), InProcessTransferEngine("h")
    a.register(src.data_ptr(), src.nbytes)
    b.register(dst.data_ptr(), dst.nbytes)
    seen = []
    InProcessTransferEngine.observers.append(lambda *args: seen.append(args[2:]))
    assert a.batch_transfer_sync(b.get_session_id(), [src.data_ptr() + 8],
                                 [dst.data_ptr()], [12]) == 0
    assert dst.tolist() == [2, 3, 4, 0, 0, 0, 0, 0]
    assert seen and seen[0][2] == [12]
    a.fail_next = True
    assert a.batch_transfer_sync(b.get_session_id(), [src.data_ptr()], [dst.data_ptr()],
                                 [4]) != 0
    assert dst.tolist()[0] == 2                        # a failed batch copies nothing
    with pytest.raises(Exception, match="not registered"):
        a.batch_transfer_sync(b.get_session_id(), [src.data_ptr()],
                              [dst.data_ptr() + 28], [8])  # runs past the end of dst
    assert a.batch_transfer_sync("nobody:1", [src.data_ptr()], [dst.data_ptr()], [4]) != 0
    InProcessTransferEngine.reset()


def test_fake_sockets_deliver_in_order_and_end_receive_loops():
    from resumespec.conformance.adapters.sglang_inprocess import (
        Drained,
        ManualThreads,
        Network,
        make_fake_zmq,
    )

    net = Network()
    zmq = make_fake_zmq(net)
    pull = zmq.Context().socket(zmq.PULL)
    pull.bind("tcp://10.0.0.1:5000")
    push = zmq.Context().socket(zmq.PUSH)
    push.connect("tcp://10.0.0.1:5000")
    push.send_multipart([b"1", b"3"])
    push.send_multipart([b"1", b"4"])
    got = []

    def loop():                                     # the shape of the fork's loops
        while True:
            got.append(pull.recv_multipart())

    threads = ManualThreads()
    threads.module.Thread(target=loop).start()
    assert threads.started[0][0] == "loop" and got == []   # start() runs nothing
    ManualThreads.run_until_drained(threads.started[0][1])
    assert got == [[b"1", b"3"], [b"1", b"4"]]
    with pytest.raises(Drained):
        pull.recv_multipart()
    assert not issubclass(Drained, Exception)      # passes the worker's `except Exception`


def test_bootstrap_registry_answers_like_the_bootstrap_server():
    from resumespec.conformance.adapters.sglang_inprocess import (
        BootstrapRegistry,
        make_fake_requests,
    )

    reg = BootstrapRegistry()
    requests = make_fake_requests(reg)
    assert requests.put("http://x/route", json={"role": "Encode", "tp_size": 1, "dp_size": 1,
                                                "rank_ip": "1.2.3.4", "rank_port": 99,
                                                "engine_rank": 0}).status_code == 200
    sizes = requests.get("http://x/route?engine_rank=-1&target_dp_group=-1").json()
    assert sizes == {"embedding_tp_size": 1, "embedding_dp_size": 1}
    assert requests.get("http://x/route?engine_rank=0&target_dp_group=0").json() == {
        "rank_ip": "1.2.3.4", "rank_port": 99}
    assert requests.get("http://x/route?engine_rank=3&target_dp_group=0").status_code == 404


def test_commit_ids_map_to_designs():
    from resumespec.conformance.adapters.sglang_cluster import design_of

    assert design_of("cca20b094")[1]["variant"] == "once"
    assert design_of("caff70bd5" + "0" * 31)[0] == "caff70bd5"
    with pytest.raises(KeyError):
        design_of("deadbeef1")


def test_loader_refuses_a_folder_without_the_fork(tmp_path):
    from resumespec.conformance.adapters.sglang_loader import ForkLoadError, find_python_root

    with pytest.raises(ForkLoadError, match="multimodal_language.py"):
        find_python_root(tmp_path)


def test_recorder_script_gives_one_line_errors(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "record_sglang_traces", REPO / "scripts" / "record_sglang_traces.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from resumespec import exitcodes

    assert mod.main(["--fork", str(tmp_path), "--commit", "nope"]) == exitcodes.USAGE
    assert mod.main(["--fork", str(tmp_path), "--commit", "cca20b094",
                     "--out", str(tmp_path)]) == exitcodes.BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("record_sglang_traces: ") for line in err)


def test_lockstep_group_reduces_across_rank_threads_in_turn():
    import torch.distributed as dist

    from resumespec.conformance.adapters.sglang_inprocess import (
        LockstepGroup,
        RanksDiverged,
        route_all_reduce_to_lockstep_groups,
    )

    route_all_reduce_to_lockstep_groups()
    group = LockstepGroup(2, timeout=5)
    order = []

    def step(r, value):
        def run():
            t = torch.tensor([value, 10 * value])
            order.append((r, "before"))
            dist.all_reduce(t, op=dist.ReduceOp.MIN, group=group)
            order.append((r, "after"))
            u = torch.tensor([value])
            dist.all_reduce(u, op=dist.ReduceOp.MAX, group=group)
            return t.tolist(), u.tolist()
        return run

    results = group.run([step(0, 3), step(1, 2)])
    assert results == [([2, 20], [3]), ([2, 20], [3])]
    assert order == [(0, "before"), (1, "before"), (0, "after"), (1, "after")]

    def lonely():
        t = torch.tensor([1])
        dist.all_reduce(t, op=dist.ReduceOp.MIN, group=group)

    with pytest.raises(RanksDiverged):
        group.run([lonely, lambda: None])
