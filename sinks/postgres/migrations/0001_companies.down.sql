DROP TABLE IF EXISTS sink_offsets;
DROP TABLE IF EXISTS company_funding_rounds;
DROP TABLE IF EXISTS company_offices;
DROP TABLE IF EXISTS companies;
