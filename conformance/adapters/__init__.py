"""Adapters: drive a real engine's code and record conformance traces.

An adapter loads an engine's own modules, replaces only what cannot run in one
test process (network sockets, RDMA, multi-process collectives, the model
scheduler) by small in-process stand-ins, observes the engine's calls and logs
them as trace events (docs/trace-format.md) through the conformance recorder.

* ``sglang_inprocess``: the in-process stand-ins (message sockets, bootstrap
  registry, transfer engine that copies bytes between registered tensors,
  threads that run on demand).
* ``sglang_loader``: imports the fork's real modules from a checkout path,
  with stub modules for heavy imports those code paths never use.
* ``sglang_observer``: wraps the fork's objects and turns what they do into
  trace events.
* ``sglang_scenarios``: one encode rank and one language rank in one process,
  and the scenarios that drive them.
* ``sglang_deployed`` (+ ``sglang_deployed_loader``, ``sglang_deployed_hooks``):
  the fork as deployed, one OS process per side, real pyzmq, the real
  Mooncake engine over TCP, gloo across the language ranks; every
  observation hook in ``sglang_deployed_hooks`` (docs/deployed-fork.md).

None of this is needed to *check* a trace: CI checks the committed traces
under ``conformance/corpus/sglang/`` and ``conformance/corpus/deployed/``
without the fork.
"""
