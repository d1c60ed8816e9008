"""Every motion kind of the embedded archive: its builder, its family and its split.

:data:`MOTIONS` gathers the choreography tables (``kind -> (builder, (min, max) seconds)``).
:data:`FAMILY` groups kinds that load the body the same way (gaits, jumps, arm work, low
bends, floor and seated work, whole-body). :data:`HELD_OUT` names the kinds only val or test
subjects perform, the way AMASS's own split holds out whole datasets: no choreography of val or
test is ever in train, and every held-out kind has train kinds of its family, so val and test
measure new choreographies, not body parts the train split never moves.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.synth import everyday, moves, rom, workout

MOTIONS: dict[str, tuple[Callable, tuple[float, float]]] = {
    **moves.MOTIONS,
    **everyday.MOTIONS,
    **rom.MOTIONS,
    **workout.MOTIONS,
}

#: kind -> family
FAMILY: dict[str, str] = {
    "walk": "gait",
    "run": "gait",
    "sidestep": "gait",
    "turn": "gait",
    "turn_in_place": "gait",
    "jump": "jump",
    "jumping_jacks": "jump",
    "skip": "jump",
    "wave": "arms",
    "reach": "arms",
    "throw": "arms",
    "box": "arms",
    "squat": "low",
    "bend": "low",
    "crouch": "low",
    "floor_reach": "low",
    "lunge": "low",
    "sit": "floor",
    "kick": "whole",
    "dance": "whole",
    "idle": "whole",
    "stretch": "arms",
    "reach_across": "arms",
    "swing": "arms",
    "arm_circles": "arms",
    "kneel": "low",
    "pick_up": "low",
    "side_lunge": "low",
    "sit_floor": "floor",
    "get_up": "floor",
    "climb": "gait",
    "high_knees": "gait",
    "hop": "jump",
    "rom": "whole",
    "workout": "whole",
}

#: The range-of-motion kind (AMASS's PosePrior captures): train subjects open with one take.
ROM_KIND = "rom"
#: The calisthenics warm-up kind (:mod:`pipeline.synth.workout`): train subjects close with takes.
WORKOUT_KIND = "workout"

#: Kinds only val or test subjects perform. The rule, fixed before the figures in docs were
#: measured: in every family of at least four kinds, one kind goes to val and one to test, and
#: the family keeps at least two train kinds; "whole" (free and range-of-motion work) is never
#: held out. Families with fewer kinds (floor: sit, sit_floor, get_up) stay whole in train.
HELD_OUT: dict[str, tuple[str, ...]] = {
    "val": ("sidestep", "skip", "box", "lunge"),
    "test": ("turn_in_place", "jumping_jacks", "throw", "crouch"),
}


def split_kinds(split: str) -> list[str]:
    """The kinds subjects of ``split`` perform, in library order: val and test their
    :data:`HELD_OUT` kinds, train every other kind."""
    if split in HELD_OUT:
        return [k for k in MOTIONS if k in HELD_OUT[split]]
    held = {k for kinds in HELD_OUT.values() for k in kinds}
    return [k for k in MOTIONS if k not in held]
