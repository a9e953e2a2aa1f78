"""The reference's corrected design deployed as separate OS processes.

One encode process and one process per language rank, control messages over
real ZMQ sockets, data over the real Mooncake transfer engine (TCP on
loopback, P2P handshake), the ranks' status all-reduce over a real
``torch.distributed`` gloo group; every protocol decision is the protocol
core's (``resumespec.reference.protocol``).  ``docs/deployed.md`` explains
it; ``resumespec deploy`` runs it.

Modules: ``common`` (configuration, wire format, buffers, source
embeddings), ``encode`` (the sender process), ``language`` (a rank
process), ``driver`` (starts them, submits requests, checks the results
and the traces).
"""
