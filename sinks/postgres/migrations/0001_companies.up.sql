-- Companies loaded by the Postgres sink, keyed by (tenant, permalink): a company sent again
-- updates its row. The whole normalised record is kept as jsonb so new fields never break loading.
CREATE TABLE companies (
  tenant              text        NOT NULL,
  permalink           text        NOT NULL,
  name                text        NOT NULL,
  category_code       text,
  founded_year        integer,
  number_of_employees integer,
  homepage_url        text,
  email_address       text,
  created_at          timestamptz,
  updated_at          timestamptz,
  document            jsonb       NOT NULL,
  source_request_id   text        NOT NULL,
  source_bucket       text        NOT NULL,
  source_key          text        NOT NULL,
  source_record_index integer     NOT NULL,
  loaded_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, permalink)
);

CREATE INDEX companies_source_request_id ON companies (source_request_id);

-- Child tables are replaced whole on each upsert of their company.
CREATE TABLE company_offices (
  tenant       text    NOT NULL,
  permalink    text    NOT NULL,
  position     integer NOT NULL,
  description  text,
  address1     text,
  address2     text,
  zip_code     text,
  city         text,
  state_code   text,
  country_code text,
  latitude     double precision,
  longitude    double precision,
  PRIMARY KEY (tenant, permalink, position),
  FOREIGN KEY (tenant, permalink) REFERENCES companies (tenant, permalink) ON DELETE CASCADE
);

CREATE TABLE company_funding_rounds (
  tenant               text    NOT NULL,
  permalink            text    NOT NULL,
  position             integer NOT NULL,
  round_code           text,
  raised_amount        numeric,
  raised_currency_code text,
  funded_year          integer,
  funded_month         integer,
  funded_day           integer,
  PRIMARY KEY (tenant, permalink, position),
  FOREIGN KEY (tenant, permalink) REFERENCES companies (tenant, permalink) ON DELETE CASCADE
);

-- The sink's consumed offsets, written in the same transaction as the rows (exactly once).
CREATE TABLE sink_offsets (
  consumer_group text    NOT NULL,
  topic          text    NOT NULL,
  partition      integer NOT NULL,
  next_offset    bigint  NOT NULL,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, partition)
);
