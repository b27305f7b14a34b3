"""Helpers shared by the Dagster-level tests."""

from contextlib import contextmanager
from pathlib import Path


@contextmanager
def live_defs_state(instance):
    """Point Dagster's defs-state context variable at this live instance for the block.

    Every DagsterInstance sets that variable and resets it when disposed; one collected out of order (it happens
    between runs in one process) leaves it on a dead instance, and the next Definitions load fails with
    "Attempted to resolve undefined DagsterInstance weakref".
    """
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(instance.defs_state_storage):
        yield


def materialize_source(config_path: Path, name: str, instance=None):
    """Add the source's partition and materialize its ingest assets on a test instance."""
    import dagster as dg

    from whisper_assets.defs.ingest import ingest_assets
    from whisper_assets.defs.partitions import source_partitions
    from whisper_assets.defs.resources import PlatformSettings

    resources = {"platform": PlatformSettings(config_path=str(config_path))}
    if instance is None:
        with dg.instance_for_test() as fresh:
            return materialize_source(config_path, name, fresh)
    if name not in instance.get_dynamic_partitions(source_partitions.name):
        instance.add_dynamic_partitions(source_partitions.name, [name])
    with live_defs_state(instance):
        return dg.materialize(ingest_assets, partition_key=name, instance=instance, resources=resources)


def run_alongside(writer, reader) -> tuple[list[Exception], int]:
    """Run `writer` in a thread and call `reader` until it finishes; return the writer's errors and reader calls."""
    import threading

    errors: list[Exception] = []
    done = threading.Event()

    def guarded() -> None:
        try:
            writer()
        except Exception as exc:  # returned to the test, which asserts there were none
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=guarded)
    thread.start()
    calls = 0
    while not done.is_set():
        reader()
        calls += 1
    thread.join()
    return errors, calls
