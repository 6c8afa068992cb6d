"""rlhf_zoo: BOND, J-BOND, REINFORCE, PPO-lite and Best-of-N on one rollout, one reward
interface, one KL measurement and one evaluation."""


def version() -> str:
    """The installed package's version (pyproject.toml), or ``unknown`` in a source tree never installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("rlhf_zoo")
    except PackageNotFoundError:
        return "unknown"


__version__ = version()
