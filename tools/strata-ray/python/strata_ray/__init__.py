"""strata-ray: strata's map stages (chunk, embed) as Ray tasks, one per shard, then the
reduce (`strata run --shards N`). The `strata` binary ships in the same wheel; see
`strata_ray.driver`."""
