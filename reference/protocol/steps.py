"""Which core step leads from one spec state to the next, with its effects.

A report that tells a TLC counterexample step by step, or a tool that
explains a state graph's edge, wants the core's own account of each step:
the action, the request and session, and the effects (alloc, free, read,
send, write, hand off, fail), not a diff of the spec's variables.
``World.moves()`` enumerates the steps; ``steps_to(world, after)`` keeps
those whose successor is the spec state ``after`` and returns each with
the effects the core asked its host to carry out.

Nothing is decided here: the moves are ``World.moves()``'s own.  The
effects are recorded as the host applies them: every ``World.apply`` on
the way from the world to a move's successor adds its effects, in order
(a write landing applies none: it is the host's, not the core's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple, cast

from .messages import Effect
from .spechost import Move, World


@dataclass(frozen=True)
class _Recording(World):
    """A world that remembers the effects of the step that made it."""

    done: tuple[Effect, ...] = ()

    def apply(self, effects: tuple[Effect, ...], **core: Any) -> World:
        after = cast(_Recording, World.apply(self, effects, **core))   # World.apply keeps the class
        return replace(after, done=self.done + tuple(effects))


class CoreStep(NamedTuple):
    """One step of ``Next``: the move (action, request, session, write,
    world after) and the effects of the core's functions, in order
    (empty for a write landing)."""

    move: Move
    effects: tuple[Effect, ...]


def moves_with_effects(world: World) -> list[CoreStep]:
    """Every step of ``Next`` from ``world``, each with its effects."""
    rec = _Recording(**{f.name: getattr(world, f.name) for f in fields(World)})
    return [CoreStep(m, getattr(m.world, "done", ())) for m in rec.moves()]


def steps_to(world: World, after: World | Mapping[str, Any], action: str | None = None) -> list[CoreStep]:
    """The steps of ``Next`` from ``world`` whose successor is ``after`` (a
    world, or the spec's variables as ``World.from_spec`` reads them).
    ``action``: TLC's label for the step, to prefer the steps so labelled
    (``WriteLand`` is accepted for a landing, which ``-dump`` labels
    ``Next``); when none carries it, every step that reaches ``after``."""
    if not isinstance(after, World):
        after = World.from_spec(world.params, world.totals, world.n_blocks, world.faults, after)
    target = after.to_spec()
    found = [c for c in moves_with_effects(world) if c.move.world.to_spec() == target]
    if action is not None:
        named = [c for c in found if c.move.action == action
                 or (action == "WriteLand" and c.move.write is not None)]
        return named or found
    return found
