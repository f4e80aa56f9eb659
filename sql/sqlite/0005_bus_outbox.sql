-- Scale-out (BUS_URL): committed events whose publish to JetStream did not succeed in time, as
-- runs of consecutive event ids, republished once JetStream takes messages again.
-- Mirrors sql/mysql/0005_bus_outbox.sql.
CREATE TABLE bus_outbox (
  first_id INTEGER PRIMARY KEY,
  last_id INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL
);
