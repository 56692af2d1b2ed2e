DROP TABLE sink_outbox;
