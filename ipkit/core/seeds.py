"""Seed roles: which seed each kind of model or draw of a run gets.

A run's seed ``k`` (one per entry of a notebook's ``seeds``) is the seed of the owner's
model; every other random choice of that run draws from ``seed_for(role, k)``, so two
roles never share a stream and a role's seed is declared once, here. The table is
written to every ``results.json`` (``seed_roles``). The offsets keep the values the
studies used before they were named, so cached models and committed numbers carry over.
"""

from __future__ import annotations

SEED_ROLES: dict[str, int] = {
    "owner": 0,  # the owner's / victim's model
    "independent": 1000,  # models trained without the owner's model (floors, unrelated)
    "thief": 2000,  # stolen copies
    "student": 3000,  # distilled students
    "ingrainer": 4000,  # ingrain's helper model
    "queries": 7919,  # the attacker's query images drawn from its pool
    "carriers": 10000,  # watermark carriers
}


def seed_for(role: str, seed: int) -> int:
    """The seed of ``role`` in the run with seed ``seed`` (see :data:`SEED_ROLES`)."""
    if role not in SEED_ROLES:
        raise KeyError(
            f"unknown seed role '{role}': declare it in ipkit.core.seeds.SEED_ROLES (known: {', '.join(SEED_ROLES)})"
        )
    return SEED_ROLES[role] + seed
