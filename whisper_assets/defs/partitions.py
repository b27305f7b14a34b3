"""One partition per dataset source: added by the upload sensor, or by hand from the UI or CLI."""

import dagster as dg

source_partitions = dg.DynamicPartitionsDefinition(name="dataset_sources")
