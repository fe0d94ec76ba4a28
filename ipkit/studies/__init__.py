"""One module per study: everything specific to its paper.

``ipkit/studies/<study_id>.py`` holds the study's typed ``Config`` (built from the
notebook's parameters), the experiment steps its notebook calls, its tables and plots,
``check_params(values)`` (rules across parameters and against the data, checked by
``ipkit run`` before any work; found by this naming convention) and ``claims(...)``, the
claim rows with their evidence. Its docstring opens with the paper and its link. The
method modules it calls (``watermark``, ``steal``, ``similarity``, ...) stay
paper-agnostic.
"""
