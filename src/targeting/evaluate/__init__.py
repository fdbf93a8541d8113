"""The evaluation protocols of evaluation.md, one call each: `kcs.protocol_a`, `world.protocol_b`."""
