"""Helpers shared by the Dagster-level tests."""

from pathlib import Path


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
    return dg.materialize(ingest_assets, partition_key=name, instance=instance, resources=resources)
