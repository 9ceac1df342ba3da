"""Offline evaluation: splits, metrics, baselines and the run behind `movierec eval`."""

from app.evaluation.runner import (
    DATASETS,
    PROTOCOLS,
    STRATEGIES,
    EvalConfig,
    EvalReport,
    format_report,
    run_eval,
)

__all__ = ["DATASETS", "PROTOCOLS", "STRATEGIES", "EvalConfig", "EvalReport", "format_report", "run_eval"]
