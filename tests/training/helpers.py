"""Shared by the training tests."""


def recorded(trainer, method: str) -> list:
    """``trainer.<method>`` wrapped to record ``trainer.step`` at each call (the step it completed)."""
    original, calls = getattr(trainer, method), []

    def recording(*args, **kwargs):
        calls.append(trainer.step)
        return original(*args, **kwargs)

    setattr(trainer, method, recording)
    return calls
