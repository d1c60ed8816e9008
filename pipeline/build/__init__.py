"""The build: AMASS archive + body models -> sampling plan -> units (Ray tasks) -> shards +
manifest, one module per stage (``python -m pipeline.build``; :mod:`pipeline.build.driver`).

- :mod:`~pipeline.build.config`: settings and the failure kinds with their exit codes;
- :mod:`~pipeline.build.preflight`: inputs checked before any work;
- :mod:`~pipeline.build.planning`: the sampling plan of a listing and its files
  (the plan itself is :mod:`pipeline.plan`);
- :mod:`~pipeline.build.run`: units in this process or as Ray tasks; :mod:`~pipeline.build.units`
  is what a worker runs, :mod:`~pipeline.build.nodes` what every node proves first;
- :mod:`~pipeline.build.finish`: accounting, topology, manifest, verify;
- :mod:`~pipeline.build.doctor`: the dry run (``--dry-run``).

Imports nothing, so a Ray worker that unpickles a unit loads only the stages it needs.
"""
