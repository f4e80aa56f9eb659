-- Scale-out (BUS_URL): committed events whose publish to JetStream did not succeed in time (the
-- publish queue was full, the ingest answer's wait ran out, or the instance stopped), as runs of
-- consecutive event ids; any instance republishes them once JetStream takes messages again and
-- removes the run. Mirrors sql/sqlite/0005_bus_outbox.sql.
CREATE TABLE bus_outbox (
  first_id BIGINT NOT NULL PRIMARY KEY,
  last_id BIGINT NOT NULL,
  created_at_ms BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
