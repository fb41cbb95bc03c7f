"""What the user will wait: remaining training steps plus the evaluations still due at stop points."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Eta:
    """remaining = steps left × seconds per step + stop points left × seconds per evaluation.

    Seconds per step is the mean of the steps so far, the first left out once there are others (it pays one-off
    allocations). Seconds per evaluation starts as the caller's measurement (the step-0 evaluation, which does
    the same work as every stop point) and becomes the mean of the stop points evaluated so far.
    """

    total_steps: int
    stop_steps: frozenset[int]
    eval_seconds: float = 0.0
    step_seconds: list[float] = field(default_factory=list)
    stop_seconds: list[float] = field(default_factory=list)

    def add_step(self, seconds: float) -> None:
        self.step_seconds.append(seconds)

    def add_stop(self, seconds: float) -> None:
        self.stop_seconds.append(seconds)

    def per_step(self) -> float:
        times = self.step_seconds[1:] if len(self.step_seconds) > 1 else self.step_seconds
        return sum(times) / len(times) if times else 0.0

    def per_eval(self) -> float:
        return sum(self.stop_seconds) / len(self.stop_seconds) if self.stop_seconds else self.eval_seconds

    def evals_left(self, step: int) -> int:
        return sum(1 for s in self.stop_steps if s > step)

    def remaining(self, step: int) -> float:
        """Seconds left once ``step`` and its stop point (if it has one) are done."""
        return (self.total_steps - step) * self.per_step() + self.evals_left(step) * self.per_eval()

    def describe(self, step: int) -> str:
        return (
            f"about {format_seconds(self.remaining(step))} left: {self.total_steps - step} steps x "
            f"{self.per_step():.1f} s + {self.evals_left(step)} evaluations x {self.per_eval():.0f} s"
        )


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
