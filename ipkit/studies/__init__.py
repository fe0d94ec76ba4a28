"""One module per study: everything specific to its paper.

``ipkit/studies/<study_id>.py`` holds the study's typed ``Config`` (built from the
notebook's parameters), the experiment steps its notebook calls, its tables and plots,
``check_params(values)`` (rules across parameters and against the data, checked by
``ipkit run`` before any work; found by this naming convention), ``hyperparameters(s, cfg)``
(the constants that are not notebook parameters and the trainer settings, recorded in
results.json), ``claims(...)``, the claim rows with their evidence
(:func:`ipkit.evidence.results.part`, :func:`ipkit.evidence.results.not_measured`),
``recorded_metrics(...)`` (the metrics ``run.record`` stores) and ``explore(...)`` (the
notebook's Explore panel, which the course apps show too). Its
docstring opens with the paper and its link. The method modules it calls (``watermark``,
``steal``, ``similarity``, ...) stay paper-agnostic.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar, cast

C = TypeVar("C", bound="Params")


class Params:
    """Base of a study's ``Config`` dataclass: ``Config.from_params(run.p)`` takes each
    field from the run's parameters (a list becomes a tuple where the field is declared a
    tuple, so a frozen config hashes)."""

    @classmethod
    def from_params(cls: type[C], p: Any) -> C:
        """Build from a run's parameters: ``run.p``, or a dict of the resolved values."""
        values = p if isinstance(p, dict) else vars(p)
        return cls(
            **{
                f.name: tuple(values[f.name]) if str(f.type).startswith("tuple") else values[f.name]
                for f in fields(cast(Any, cls))
            }
        )
