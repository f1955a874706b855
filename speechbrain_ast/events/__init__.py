"""Frame-level sound event detection on AST's token grid: the frame head,
the columns' times, strong targets and the loss (``frames``), median
filter, thresholds and events (``postprocess``), DCASE's scores through
sed_scores_eval and sed_eval (``evaluate``), event files (``output``),
the frame head and tuned settings a model folder carries
(``model_folder``) and the frame scores of a loaded folder
(``detector``)."""

from speechbrain_ast.events.detector import folder_frame_head, frame_scores
from speechbrain_ast.events.evaluate import (
    evaluate_events,
    read_durations_tsv,
    read_events_tsv,
)
from speechbrain_ast.events.frames import (
    FrameHead,
    column_edges,
    sed_loss,
    strong_targets,
)
from speechbrain_ast.events.model_folder import (
    event_extras,
    folder_event_settings,
)
from speechbrain_ast.events.output import write_events
from speechbrain_ast.events.postprocess import (
    Event,
    median_filter,
    scores_to_events,
    tune_thresholds,
)

__all__ = [
    "Event",
    "FrameHead",
    "column_edges",
    "evaluate_events",
    "event_extras",
    "folder_event_settings",
    "folder_frame_head",
    "frame_scores",
    "median_filter",
    "read_durations_tsv",
    "read_events_tsv",
    "scores_to_events",
    "sed_loss",
    "strong_targets",
    "tune_thresholds",
    "write_events",
]
