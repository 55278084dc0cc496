"""Where this process stands in a multi-process run (``accelerate launch``, ``torchrun``)
or a joblib worker pool, and how many CPU threads torch should use there.

Nothing here starts processes: training across processes is ``transformers.Trainer``'s
(DDP through accelerate), parallel model selection is joblib's. These helpers only make the
library behave in them: one progress bar and one saved artifact per run, and no fight over
the cores between joblib workers.
"""

from __future__ import annotations

import os


def _launch_value(getter: str, variable: str, default: int) -> int:
    """From the initialised process group if there is one, else the launcher's environment."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return int(getattr(dist, getter)())
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return int(os.environ.get(variable, "") or default)


def process_rank() -> int:
    """Global rank of this process (0 outside a distributed launch)."""
    return _launch_value("get_rank", "RANK", 0)


def world_size() -> int:
    """Number of processes of the launch (1 outside a distributed launch)."""
    return _launch_value("get_world_size", "WORLD_SIZE", 1)


def is_main_process() -> bool:
    """True on rank 0 (and always outside a distributed launch)."""
    return process_rank() == 0


def thread_limit(num_threads: int | None = None) -> int | None:
    """The torch thread count this process should use, or None to keep torch's.

    An explicit ``num_threads`` wins. Otherwise ``OMP_NUM_THREADS`` is honoured: joblib's
    default (loky) backend sets it to ``cpu_count() // n_jobs`` in its workers, so
    ``GridSearchCV(..., n_jobs=k)`` splits the cores between the k fits; users set it for
    dask or ray workers, ``torchrun`` sets it to 1 per process unless told otherwise.
    """
    if num_threads:
        return max(1, int(num_threads))
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return None


def apply_thread_limit(num_threads: int | None = None) -> int:
    """Set torch's intra-op thread count per :func:`thread_limit`; return the count in use."""
    import torch

    limit = thread_limit(num_threads)
    if limit is not None and torch.get_num_threads() != limit:
        torch.set_num_threads(limit)
    return int(torch.get_num_threads())


def _invalid_device(expected: str, device: str) -> Exception:
    from sklearn.utils._param_validation import InvalidParameterError

    return InvalidParameterError(f"The 'device' parameter of LLMClassifier must be {expected}. Got {device!r} instead.")


def check_device(device: str) -> None:
    """``device`` must name a device torch knows and that is present (checked before anything loads)."""
    if device == "auto":
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise _invalid_device("'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", device) from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise _invalid_device(
                f"a device torch can use; no CUDA GPU is visible (torch {torch.__version__}, CUDA build "
                f"{torch.version.cuda}). Use device='auto' or 'cpu'", device)
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise _invalid_device(f"an existing GPU; {torch.cuda.device_count()} are visible", device)
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise _invalid_device("a device torch can use; MPS is not available here. Use device='auto' or 'cpu'", device)
    elif parsed.type != "cpu":
        raise _invalid_device("'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", device)
