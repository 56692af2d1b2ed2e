-- The schema registry's own database (docker-compose.yml, service `registry`): the registry keeps
-- its schemas in PostgreSQL so that they survive its restarts. The official postgres image runs
-- this once, when it initialises an empty data volume, as the POSTGRES_USER (`etl`).
CREATE DATABASE registry OWNER etl;
